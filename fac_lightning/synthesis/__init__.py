"""Synthesis strategies (``synthesis=fac | self_instruct | magpie``), one module each, behind one registry."""

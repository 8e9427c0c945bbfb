"""``relevance=all``: every feature active on the anchor is relevant (no task filter; FAC then measures coverage of
the anchor's whole feature set)."""

from fac_lightning.relevance import RELEVANCE, RelevanceConfig, RelevanceMethod


@RELEVANCE.register("all", RelevanceConfig)
class AllFeatures(RelevanceMethod):
    def select(self, anchor, labels, delta, rubric, make_generator, cache_file):
        return anchor.active(delta), {}

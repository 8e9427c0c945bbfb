"""CAA's A/B items (Rimsky et al. 2024, ``nrimsky/CAA`` datasets): a ``question`` whose answer choices are lines
``(A) …``, ``(B) …`` (sometimes up to ``(H)``), and two answers, ``answer_matching_behavior`` and
``answer_not_matching_behavior``, each a choice letter in parentheses, ``"(A)"``.

What makes an item well-formed (``ab_problem``), its choices and stem, and the same item with its two answers'
choices swapped (robust accuracy asks the question in both orders).
"""

import re

CHOICE = re.compile(r"^[ \t]*\(([A-Z])\)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
"""A choice line: ``(A) text``."""
ANSWER = re.compile(r"^\(([A-Z])\)$")
"""An answer: a choice letter in parentheses."""
_CHOICES_HEADER = re.compile(r"\s*(?:Choices|Options|Answers?)\s*:\s*$", re.IGNORECASE)
_LEAKED = re.compile(r"\b(?:answer|correct|matching)\b\s*(?:is|:|=)\s*\(?[A-Z]\)", re.IGNORECASE)
"""An answer stated outside the choice lines (``Answer: (A)``, ``the correct answer is B)``)."""


def choices(question: str) -> dict[str, str]:
    """{letter: text} of the question's choice lines."""
    return {m.group(1): m.group(2) for m in CHOICE.finditer(question)}


def stem(question: str) -> str:
    """The question without its choices (and without a ``Choices:`` line before them)."""
    first = CHOICE.search(question)
    text = question[: first.start()] if first else question
    return _CHOICES_HEADER.sub("", text.rstrip()).strip()


def letter(answer: str) -> str | None:
    match = ANSWER.match(answer.strip()) if isinstance(answer, str) else None
    return match.group(1) if match else None


def ab_problem(question: str, matching: str, not_matching: str) -> str | None:
    """Why (question, matching answer, not matching answer) is not a well-formed A/B item, or None: a reason of
    ``bad_answer_letter`` (an answer that is not ``(X)``), ``same_answer_twice``, ``missing_choice`` (an answer's
    letter has no choice line, or fewer than two choices), ``empty_choice``, ``identical_choices`` (the two answers'
    choices say the same), ``answer_leaked`` (the text outside the choice lines states an answer)."""
    letters = letter(matching), letter(not_matching)
    if None in letters:
        return "bad_answer_letter"
    if letters[0] == letters[1]:
        return "same_answer_twice"
    options = choices(question)
    if len(options) < 2 or any(x not in options for x in letters):
        return "missing_choice"
    texts = [" ".join(options[x].lower().split()) for x in letters]
    if not all(texts):
        return "empty_choice"
    if texts[0] == texts[1]:
        return "identical_choices"
    if _LEAKED.search(CHOICE.sub("", question)):
        return "answer_leaked"
    return None


def swapped(question: str, matching: str, not_matching: str) -> tuple[str, str, str]:
    """The item with the texts of its two answers' choices exchanged, so each answer now has the other letter
    (the other choices keep their places)."""
    a, b = letter(matching), letter(not_matching)
    options = choices(question)

    def swap(match: re.Match) -> str:
        line, x = match.group(0), match.group(1)
        if x not in (a, b):
            return line
        start, end = match.start(2) - match.start(0), match.end(2) - match.start(0)
        return line[:start] + options[b if x == a else a] + line[end:]

    return CHOICE.sub(swap, question), not_matching, matching

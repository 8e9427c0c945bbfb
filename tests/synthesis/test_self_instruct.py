import pytest

from fac_lightning.synthesis.self_instruct import blacklisted


@pytest.mark.parametrize("text", ["Describe the images.", "Make a flowchart?", "Draw a cat", "Plot: y = x",
                                  "Please go to the store", "Summarise this FILE, then stop"])
def test_a_blacklisted_word_is_found_at_word_boundaries(text):
    assert blacklisted(text)


@pytest.mark.parametrize("text", ["Explain photosynthesis in two sentences.", "Write a haiku about rain",
                                  "What is a profile?", "Name a cartographer", "Which drawer holds the forks?"])
def test_words_that_only_contain_a_blacklisted_word_pass(text):
    assert not blacklisted(text)


@pytest.mark.parametrize("text", ["- a list item", "¿Qué hora es?", ""])
def test_an_item_must_start_with_an_ascii_letter_or_digit(text):
    assert blacklisted(text)

import pytest

from react.agent.metrics import exact_match, f1_score, normalize_answer


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Saimaa Gesture", "saimaa gesture"),
        ("  Arthur's   Magazine. ", "arthurs magazine"),
        ("An apple, a day", "apple day"),
        ("1,800 to 7,000 ft", "1800 to 7000 ft"),
        ("theatre", "theatre"),  # 'the' only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer_as_official_script(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match("the Saimaa gesture!", "The Saimaa Gesture")
    assert not exact_match("Saimaa", "The Saimaa Gesture")


def test_f1_partial_overlap():
    f1, precision, recall = f1_score("director screenwriter", "director, screenwriter, actor")
    assert precision == 1.0
    assert recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(0.8)


@pytest.mark.parametrize(("pred", "gold"), [("yes", "no"), ("no", "yes"), ("yes it is", "yes"), ("noanswer", "x")])
def test_f1_yes_no_noanswer_must_match_exactly(pred, gold):
    assert f1_score(pred, gold) == (0.0, 0.0, 0.0)


def test_f1_yes_matches_yes():
    assert f1_score("Yes.", "yes")[0] == 1.0


def test_f1_no_overlap_and_empty_prediction():
    assert f1_score("Paris", "London")[0] == 0.0
    assert f1_score("", "London")[0] == 0.0

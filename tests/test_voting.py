from harness.tasks.voting import majority_vote


def test_majority_over_normalised_answers():
    assert majority_vote("malt_gsm8k", ["1,000", "7", "1000"]) == ("1,000", 0)
    assert majority_vote("malt_math", ["\\frac12", "3", "0.5"]) == ("\\frac12", 0)


def test_ties_go_to_the_earliest_first_occurrence():
    assert majority_vote("malt_gsm8k", ["7", "8", "8", "7"]) == ("7", 0)
    assert majority_vote("malt_gsm8k", ["9", "8", "7"]) == ("9", 0)
    assert majority_vote("malt_csqa", [None, "b", "A", "B", "a"]) == ("b", 1)


def test_missing_answers_do_not_vote():
    assert majority_vote("malt_gsm8k", [None, None, "3"]) == ("3", 2)
    assert majority_vote("malt_gsm8k", [None, None]) == (None, None)

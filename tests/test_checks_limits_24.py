"""Exercise 9.1's check before the sweep (issue 24): it reads the prediction's form only."""
from bnutils.checks import limits as check


def _result(fn):
    return check.batch_of_two_prediction.evaluate(fn)


def test_any_well_formed_prediction_passes_without_being_judged():
    for answer in ({"none", "ln", "gn"}, {"bn"}, set(), ["LN", " gn "], ("none",)):
        result = _result(lambda answer=answer: answer)
        assert result.passed, (answer, result.message)
        assert "judges it" in result.message
    # the message repeats the prediction, never the answer the sweep will give
    assert "(bn)" in _result(lambda: {"bn"}).message
    assert "an empty set" in _result(lambda: set()).message


def test_the_stub_fails_as_not_done():
    def stub():
        raise NotImplementedError("Exercise 9.1: replace this line with your solution")
    assert not _result(stub).passed


def test_malformed_predictions_fail_with_a_hint():
    cases = [("ln", "return a set of names"), ({"ln": 1}, "return a set of names"),
             (3, "return a set of names"), ({None, "ln"}, "write the string 'none'"),
             ({1}, "must be a string"),
             ({"layernorm"}, "use the names")]
    for answer, hint in cases:
        result = _result(lambda answer=answer: answer)
        assert not result.passed, answer
        assert hint in result.message, (answer, result.message)

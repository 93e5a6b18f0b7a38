import pytest

from react.agent.parsing import parse_action, split_completion, truncate_at_stop


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("Search[Colorado orogeny]", "search", "Colorado orogeny"),
        ("search[Milhouse]", "search", "Milhouse"),  # ReAct lower-cases the first letter
        ("  Lookup[eastern sector] ", "lookup", "eastern sector"),
        ("Finish[1,800 to 7,000 ft]", "finish", "1,800 to 7,000 ft"),
        ("Finish[]", "finish", ""),
        ("Search[Adam Clayton Powell (film)]", "search", "Adam Clayton Powell (film)"),
        ("Search[Foo [bar]]", "search", "Foo [bar]"),  # as ReAct's startswith/endswith test
    ],
)
def test_valid_actions(text, kind, argument):
    action = parse_action(text)
    assert (action.type, action.argument, action.reason) == (kind, argument, "ok")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_action"),
        ("   \n ", "empty_action"),
        ("Search Milhouse", "invalid_action"),
        ("Search[Milhouse", "invalid_action"),
        ("Think[about it]", "invalid_action"),
        ("Finish[no]\nQuestion: next one", "invalid_action"),  # ReAct: not endswith("]")
        ("Search[a]. ", "invalid_action"),
        ("\x00\x1b[31m", "invalid_action"),
    ],
)
def test_invalid_actions_never_raise(text, reason):
    action = parse_action(text)
    assert action.type == "invalid"
    assert action.reason == reason


def test_split_completion_with_action_line():
    completion = split_completion(" I need to search X.\nAction 1: Search[X]", 1)
    assert completion.thought == "I need to search X."
    assert completion.action == "Search[X]"


def test_split_completion_without_action_line_keeps_first_line():
    completion = split_completion(" I need to search X.\nThen more text", 1)
    assert completion.thought == "I need to search X."
    assert completion.action is None


def test_split_completion_wrong_step_number_is_a_missing_action():
    assert split_completion("think\nAction 2: Search[X]", 1).action is None


def test_split_completion_two_action_lines_is_a_missing_action():
    # ReAct's `thought, action = ...split(...)` raises on three parts and falls back.
    assert split_completion("a\nAction 1: Search[X]\nAction 1: Search[Y]", 1).action is None


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "😀" * 500, "x" * 10_000])
def test_split_completion_degenerate_text(text):
    completion = split_completion(text, 3)
    assert completion.action is None
    assert isinstance(completion.thought, str)


def test_truncate_at_first_stop():
    assert truncate_at_stop("abc\nObservation 1: x", ["\nObservation 1:"]) == "abc"
    assert truncate_at_stop("a\nb\nc", ["\nc", "\nb"]) == "a"
    assert truncate_at_stop("abc", []) == "abc"

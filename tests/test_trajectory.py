"""The ReAct trajectory format: parsing and the spans the model wrote."""

import pytest

from react.agent.trajectory import (
    TrajectoryFormatError,
    final_answer,
    format_step,
    model_written_spans,
    parse_prefix,
    parse_trajectory,
    training_text,
)


def article_examples(prompt_prefix):
    for block in prompt_prefix.split("Question: ")[1:]:
        question, trajectory = block.split("\n", 1)
        yield question, trajectory


def test_the_six_article_examples_parse(prompt_prefix):
    answers = [final_answer(parse_trajectory(t)) for _, t in article_examples(prompt_prefix)]
    assert answers == ["1,800 to 7,000 ft", "Richard Nixon", "The Saimaa Gesture",
                       "director, screenwriter, actor", "Arthur's Magazine", "yes"]


def test_multi_line_observation_is_kept(prompt_prefix):
    _, trajectory = list(article_examples(prompt_prefix))[2]
    steps = parse_trajectory(trajectory)
    assert steps[1].observation.startswith("Adam Clayton Powell is a 1989 American documentary")
    assert "\nThe film is about" in steps[1].observation


def test_written_spans_cover_thought_action_and_the_stop_marker():
    trajectory = format_step(1, "I search X.", "Search[X]", "X is a thing.") + "Thought 2: Done.\nAction 2: Finish[x]"
    written = [trajectory[a:b] for a, b in (s.written for s in parse_trajectory(trajectory))]
    assert written == [" I search X.\nAction 1: Search[X]\nObservation 1:", " Done.\nAction 2: Finish[x]"]


def test_spans_are_offset_into_the_training_text():
    trajectory = format_step(1, "t", "Finish[a]", "Episode finished.")
    text = training_text("INSTRUCTION", " Q? ", trajectory)
    assert text == "INSTRUCTION\nQuestion: Q?\n" + trajectory
    [(a, b)] = model_written_spans(text, len(text) - len(trajectory))
    assert text[a:b] == " t\nAction 1: Finish[a]\nObservation 1:"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "does not start with 'Thought 1:'"),
        ("Hello\nThought 1: x\nAction 1: Finish[a]", "does not start"),
        ("Thought 1: x\nAction 2: Finish[a]", "expected 'Action 1:' but found 'Action 2:'"),
        ("Thought 1: x", "has a thought but no action"),
        ("Thought 1: x\nAction 1: Search[a]\nObservation 1: o\n", "the last action is not Finish"),
        ("Thought 1: x\nAction 1: Finish[a]\nObservation 1: o\nThought 2: y\nAction 2: Finish[b]",
         "step 1: Finish must be the last action"),
        ("Thought 1: x\nAction 1: Jump[a]", "step 1: invalid action"),
    ],
)
def test_malformed_trajectories_say_why(text, message):
    with pytest.raises(TrajectoryFormatError, match=message):
        parse_trajectory(text)


def test_parse_prefix_keeps_the_well_formed_steps_before_a_problem():
    text = format_step(1, "a", "Search[X]", "x") + format_step(2, "b", "Jump[Y]", "y")
    steps, problem = parse_prefix(text)
    assert [s.action for s in steps] == ["Search[X]"]
    assert problem == "step 2: invalid action 'Jump[Y]'"
    assert parse_prefix(format_step(1, "a", "Finish[x]", "done")) == (parse_trajectory(
        format_step(1, "a", "Finish[x]", "done")), None)


def test_instruction_prompt_is_the_training_text_up_to_the_trajectory(project_dir):
    from react.agent.loop import question_prompt
    from react.agent.prompts import read_prefix
    from react.config.validate import load_schema
    from react.paths import resolve_path

    path = resolve_path("package:prompts/instruction.txt")
    prompt = question_prompt(read_prefix("instruction", load_schema()["properties"]["prompt"]["default"], path), " Who? ", strip=True)
    trajectory = format_step(1, "t", "Finish[a]", "Episode finished.")
    assert training_text(path.read_text().rstrip("\n"), " Who? ", trajectory) == prompt + trajectory

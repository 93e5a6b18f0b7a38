"""Progress: a bar with the running EM on a terminal, one log line per agent step in a log file."""

from __future__ import annotations

import logging
import time

from react.agent.loop import AgentConfig, Task, run_agent
from react.environment.offline import WikiEnv
from react.pipeline.evaluate import progress_logger
from react.search.index import Corpus

CORPUS = Corpus.from_paragraphs({"Milhouse": ["Milhouse was named after Richard Nixon."]})
TASKS = [Task(f"q{i}", f"Who was Milhouse named after? ({i})", "Richard Nixon", "dev") for i in range(6)]


def script(prompt, stop):
    step = prompt.count("\nObservation ") + 1
    if step == 1:
        return " Search.\nAction 1: Search[Milhouse]"
    return f" Done.\nAction {step}: Finish[{'Richard Nixon' if '(1)' in prompt or '(2)' in prompt else 'x'}]"


def test_log_file_gets_one_line_per_step_with_the_running_em(scripted, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="react.pipeline.evaluate"):
        run_agent(TASKS, scripted(script), lambda protocol: WikiEnv(CORPUS, protocol), "P\n", AgentConfig(),
                  on_step=progress_logger(len(TASKS), time.perf_counter(), bar=False))
    lines = [r.getMessage() for r in caplog.records if r.name == "react.pipeline.evaluate"]
    assert len(lines) == 2  # two agent steps, not one line per question
    assert lines[-1].startswith("step 2: 6/6 episodes done, 2 correct so far (EM 33.3% of done)")
    assert "\r" not in capsys.readouterr().err


def test_terminal_gets_a_bar_with_the_running_em(scripted, capsys):
    run_agent(TASKS, scripted(script), lambda protocol: WikiEnv(CORPUS, protocol), "P\n", AgentConfig(),
              on_step=progress_logger(len(TASKS), time.perf_counter(), bar=True))
    err = capsys.readouterr().err
    assert "episodes" in err and "6/6" in err and "em=33.3%" in err

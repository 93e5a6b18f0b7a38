"""Progress of training and merging: one log line per logged step; tqdm bars only on a terminal."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager

log = logging.getLogger(__name__)


def callbacks(progress_bars: bool):
    """The trainer's callbacks: step logging, and a tqdm bar (a class, or None off a terminal)."""
    from transformers import ProgressCallback, TrainerCallback

    class LogSteps(TrainerCallback):
        """One logging line per logged step; make sure the last step is saved as a checkpoint."""

        def on_train_begin(self, args, state, control, **kwargs):
            log.info("training: %d steps, %d examples per step", state.max_steps,
                     args.per_device_train_batch_size * args.gradient_accumulation_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = True  # transformers does this too; kept in case it stops doing so

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                grad = logs.get("grad_norm")
                log.info(
                    "step %d/%d  epoch %.2f  loss %.4f  lr %.3g  grad_norm %s",
                    state.global_step, state.max_steps, logs.get("epoch", state.epoch or 0.0), logs["loss"],
                    logs.get("learning_rate", float("nan")), f"{grad:.3f}" if grad is not None else "-",
                )
            elif "train_runtime" in logs:
                log.info("training done: %d steps in %.1f s (mean loss %.4f)",
                         state.global_step, logs["train_runtime"], logs.get("train_loss", float("nan")))

    class QuietProgress(ProgressCallback):
        """The tqdm bar without its printed log dictionaries (those go through logging)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return LogSteps(), QuietProgress if progress_bars else None


@contextmanager
def progress_bars_only_on_a_tty():
    """Turn datasets' and transformers' tqdm bars off unless stderr is a terminal (restored afterwards)."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    if sys.stderr.isatty():
        yield
        return
    datasets_on = not are_progress_bars_disabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cannot disable: HF_DATASETS_DISABLE_PROGRESS_BARS=0 is set"
        if datasets_on:
            disable_progress_bars()
        if transformers_on:
            transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if datasets_on:
                enable_progress_bars()
            if transformers_on:
                transformers_logging.enable_progress_bar()

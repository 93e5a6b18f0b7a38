"""Chat templates in evaluation and finetuning (issue 14), on the tiny model given the default model's template."""

import json

import pyarrow as pa
import pytest

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.config.settings import default_engine_settings
from react.environment.offline import WikiEnv
from react.inference.base import Sampling
from react.inference.chat import Chat, ChatTemplate, Message, NoChatTemplate
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus

PAGES = {
    "Milhouse": [
        "Milhouse Mussolini Van Houten is a recurring character in The Simpsons created by Matt Groening.",
        " Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous.",
    ],
}
MILHOUSE = Task("q1", "Who was Milhouse named after?", "Richard Nixon", "dev", index=7)
PREFIX = "Solve a question answering task.\n(examples)\n"
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_paragraphs(PAGES)


@pytest.fixture(scope="module")
def template(tiny_chat_model):
    from transformers import AutoTokenizer

    return ChatTemplate(AutoTokenizer.from_pretrained(tiny_chat_model), "tiny-chat")


def milhouse(prompt: str, stop: list[str]) -> str:
    """Search at step 1; no action line at step 2 (ReAct's fallback); the fallback finishes."""
    if stop == ["\n"]:
        return " Finish[Richard Nixon]\nmore"
    if "Observation 1:" not in prompt:
        return " I need to search Milhouse.\nAction 1: Search[Milhouse]\nObservation 1: made up"
    return " Milhouse was named after Richard Nixon.\nThe answer is Richard Nixon."


def run_chat(corpus, scripted, template, form, stops=None, **config):
    def script(prompt, stop):
        if stops is not None:
            stops.append(stop)
        return milhouse(prompt, stop)

    backend = scripted(script, chat_template=template, **config)
    episodes = run_agent([MILHOUSE], backend, lambda protocol: WikiEnv(corpus, protocol), PREFIX, AgentConfig(),
                         form=form)
    return episodes[0], backend


def test_chat_turns_put_each_step_in_an_assistant_turn_and_each_observation_in_a_user_turn(
        corpus, scripted, template):
    stops = []
    episode, backend = run_chat(corpus, scripted, template, "chat", stops)
    assert episode.prediction == "Richard Nixon" and episode.finish_reason == "finished"
    # ReAct's stops: the step's observation marker (the engine also ends at the turn's end), then the line's end.
    assert stops == [["\nObservation 1:"], ["\nObservation 2:"], ["\n"]]
    first, second, fallback = (calls[0] for calls in backend.calls)
    question = PREFIX + "Question: Who was Milhouse named after?"
    assert first == Chat((Message("user", question), Message("assistant", "Thought 1:")))
    observation = episode.steps[0]["observation"]
    assert second == Chat((
        Message("user", question),
        Message("assistant", "Thought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]"),
        Message("user", f"Observation 1: {observation}"),
        Message("assistant", "Thought 2:"),
    ))
    # ReAct's fallback continues the same open assistant turn up to "Action 2:".
    assert fallback.messages[-1] == Message("assistant", "Thought 2: Milhouse was named after Richard Nixon.\n"
                                                         "Action 2:")
    # The rendering: the model's template, the assistant turn left open after "Thought 2:".
    assert template.render(second) == (
        f"{SYSTEM}<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\nThought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]<|im_end|>\n"
        f"<|im_start|>user\nObservation 1: {observation}<|im_end|>\n<|im_start|>assistant\nThought 2:")
    # The trajectory column is ReAct's text whatever the form, so datasets and `show` read it alike.
    assert episode.prompt[len(PREFIX):].startswith("Question: Who was Milhouse named after?\nThought 1: I need")


def test_chat_inline_keeps_the_whole_trajectory_in_one_assistant_turn(corpus, scripted, template):
    episode, backend = run_chat(corpus, scripted, template, "chat-inline")
    second = backend.calls[1][0]
    question_end = len(PREFIX + "Question: Who was Milhouse named after?\n")
    assert second == Chat((Message("user", PREFIX + "Question: Who was Milhouse named after?"),
                           Message("assistant", episode.prompt[question_end:].split("Thought 2:")[0] + "Thought 2:")))
    assert second.messages[1].content.startswith("Thought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]"
                                                 "\nObservation 1: ")


def test_chat_and_raw_episodes_take_the_same_steps_for_the_same_completions(corpus, scripted, template):
    raw = run_agent([MILHOUSE], scripted(milhouse), lambda p: WikiEnv(corpus, p), PREFIX, AgentConfig())[0]
    for form in ("chat", "chat-inline"):
        chat, _ = run_chat(corpus, scripted, template, form)
        assert chat.steps == raw.steps and chat.prompt == raw.prompt and chat.n_calls == raw.n_calls == 3


def test_rows_record_the_format_and_the_template_hash(corpus, scripted, template):
    episode, _ = run_chat(corpus, scripted, template, "chat")
    row = episode_row(episode, model="m", backend="scripted", config=AgentConfig(), prompt_sha256="p",
                      corpus_sha256="c", chat_template_sha256=template.sha256)
    assert (row["format"], row["chat_template_sha256"]) == ("chat", template.sha256)
    pa.Table.from_pylist([row], schema=EPISODE_SCHEMA)  # the contract holds


def test_a_conversation_longer_than_the_context_ends_the_episode_with_the_context_limit(
        corpus, scripted, template):
    # The first step's chat (~130 characters of prefix and question: ~60 "tokens" here) fits;
    # the second, with the observation, does not.
    episode, _ = run_chat(corpus, scripted, template, "chat", max_context=270)
    assert episode.finish_reason == "context_limit"
    assert [s["status"] for s in episode.steps] == ["ok", "context_limit"]


def test_the_engine_sends_the_template_s_bos_once(tmp_path, tiny_chat_model):
    """A tokenizer that adds a BOS, a template that writes one: the engine's ids have it once."""
    from transformers import AutoTokenizer

    from react.inference.chat import prompt_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    tokenizer.add_bos_token = True  # now tokenizing text prepends <|endoftext|> as a BOS
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    chat = Chat((Message("user", "Question: Who?"), Message("assistant", "Thought 1:")))
    template = ChatTemplate(tokenizer, "bos")
    bos = tokenizer.bos_token_id
    sent = prompt_token_ids(tokenizer, template, [chat])[0]
    expected = list(tokenizer.apply_chat_template(chat.as_dicts(), tokenize=True, continue_final_message=True,
                                                  return_dict=True)["input_ids"])
    assert sent == expected and sent.count(bos) == 1
    # What sending the rendered text as raw text would do: the BOS twice.
    assert prompt_token_ids(tokenizer, template, [template.render(chat)])[0][:2] == [bos, bos]


def test_transformers_and_vllm_render_chats_alike(tiny_chat_model):
    from react.inference.transformers import TransformersBackend

    backend = TransformersBackend(str(tiny_chat_model), "tiny-chat", default_engine_settings("transformers"))
    chat = Chat((Message("user", "Question: Who?"), Message("assistant", "Thought 1:")))
    assert backend.count_tokens([chat]) == [len(backend.chat_template.token_ids(chat))]
    uncached = TransformersBackend(str(tiny_chat_model), "tiny-chat",
                                   default_engine_settings("transformers", prefix_cache=False))
    sampling = Sampling(max_new_tokens=8)
    assert backend.generate([chat, chat], ["\n"], sampling, [0, 0]) == uncached.generate([chat, chat], ["\n"],
                                                                                         sampling, [0, 0])


def test_a_model_without_a_template_refuses_a_chat(tiny_model):
    from react.inference.transformers import TransformersBackend

    backend = TransformersBackend(str(tiny_model), "tiny", default_engine_settings("transformers"))
    assert backend.chat_template is None
    with pytest.raises(NoChatTemplate, match="chat template"):
        backend.count_tokens([Chat((Message("user", "Q"), Message("assistant", "Thought 1:")))])


# --------------------------------------------------------------------------- finetuning in chat form

RECORD_TRAJECTORY = ("Thought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]\n"
                     "Observation 1: Milhouse was named after Richard Nixon.\n"
                     "Thought 2: So the answer is Richard Nixon.\nAction 2: Finish[Richard Nixon]\n"
                     "Observation 2: Episode finished, reward = 1\n")


def record():
    text = "INSTRUCTION\nQuestion: Who was Milhouse named after?\n" + RECORD_TRAJECTORY
    return {"id": "q1", "text": text, "trajectory": RECORD_TRAJECTORY}


def test_a_record_becomes_the_conversation_the_agent_has_at_evaluation():
    from react.agent.forms import model_input
    from react.training.chat import record_messages

    messages = record_messages(record())
    assert messages == [
        {"role": "user", "content": "INSTRUCTION\nQuestion: Who was Milhouse named after?"},
        {"role": "assistant", "content": "Thought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]"},
        {"role": "user", "content": "Observation 1: Milhouse was named after Richard Nixon."},
        {"role": "assistant", "content": "Thought 2: So the answer is Richard Nixon.\nAction 2: Finish[Richard Nixon]"},
    ]
    # The evaluation's first prompt in chat form (instruction prompt, question stripped) starts the same way.
    first = model_input("chat", "INSTRUCTION\nQuestion: Who was Milhouse named after?\n", "", [], "Thought 1:")
    assert first.as_dicts()[0] == messages[0]


def test_the_training_template_renders_exactly_what_the_model_reads(tiny_chat_model):
    from transformers import AutoTokenizer

    from react.training.chat import record_messages, training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    training = training_chat_template(tokenizer, "tiny-chat")
    assert "{% generation %}" in training
    conversations = [record_messages(record()), [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]]
    for messages in conversations:
        for generation_prompt in (False, True):
            assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                                 chat_template=training) == tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt)


def test_a_model_without_a_template_cannot_be_finetuned_in_chat_form(tiny_model):
    from transformers import AutoTokenizer

    from react.training.chat import training_chat_template

    with pytest.raises(ValueError, match="tiny: no chat template"):
        training_chat_template(AutoTokenizer.from_pretrained(tiny_model), "tiny")


def test_the_loss_is_on_the_assistant_turns_token_by_token(tmp_path, tiny_chat_model):
    """trl's own preparation (assistant_only_loss): labels are exactly the assistant turns and their <|im_end|>."""
    from transformers import AutoTokenizer

    from react.training.chat import load_chat_training_set, training_chat_template
    from react.training.presets import Hyperparameters
    from react.training.trainer import make_trainer

    dataset = tmp_path / "set.jsonl"
    dataset.write_text(json.dumps(record()) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    tokenizer.chat_template = training_chat_template(tokenizer, "tiny-chat")
    training_set = load_chat_training_set(dataset, tokenizer, tokenizer.chat_template, max_length=1024)
    hp = Hyperparameters.from_preset("cpu", {"max_steps": 1})
    trainer = make_trainer(tiny_chat_model, training_set.dataset, tmp_path / "out", hp, tokenizer, "cpu")
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels) == training_set.n_tokens
    trained = [(i, t) for i, (t, label) in enumerate(zip(ids, labels)) if label != -100]
    assert all(labels[i] == t for i, t in trained)
    assert len(trained) == training_set.n_trainable
    # The trained tokens, run by run, are the two assistant turns, each with its end-of-turn token.
    runs, current = [], []
    for k, (i, _) in enumerate(trained):
        if current and i != trained[k - 1][0] + 1:
            runs.append(current)
            current = []
        current.append(ids[i])
    runs.append(current)
    assert [tokenizer.decode(r) for r in runs] == [
        "Thought 1: I need to search Milhouse.\nAction 1: Search[Milhouse]<|im_end|>",
        "Thought 2: So the answer is Richard Nixon.\nAction 2: Finish[Richard Nixon]<|im_end|>",
    ]
    # Nothing the user wrote (instruction, question, observation) is trained on.
    untrained = tokenizer.decode([t for t, label in zip(ids, labels) if label == -100])
    assert "Observation 1: Milhouse was named after Richard Nixon." in untrained and "INSTRUCTION" in untrained


def test_chats_share_the_cached_prefix_across_questions_and_steps(tiny_chat_model, prompt_prefix):
    """The few-shot user message is one prefix for every question; a step's chat extends the last one's."""
    from react.agent.forms import model_input
    from react.inference.transformers import TransformersBackend

    backend = TransformersBackend(str(tiny_chat_model), "tiny-chat", default_engine_settings("transformers"))
    questions = [f"{prompt_prefix}Question: {q}\n" for q in ("Who is older?", "Which came first?")]
    step1 = [model_input("chat", q, "", [], "Thought 1:") for q in questions]
    backend.generate(step1, ["\n"], Sampling(max_new_tokens=4), [0, 0])
    ids = [backend.chat_template.token_ids(c) for c in step1]
    shared = len(__import__("os").path.commonprefix(ids))
    assert backend.stats["prefix_tokens_computed"] == shared > 1000  # the whole few-shot prompt, once
    steps = [{"thought": "t", "action": "Search[X]", "observation": "obs"}]
    step2 = model_input("chat", questions[0], "Thought 1: t\nAction 1: Search[X]\nObservation 1: obs\n", steps,
                        "Thought 2:")
    assert backend.chat_template.token_ids(step2)[:len(ids[0]) - 1] == ids[0][:-1]  # the step-1 chat, extended
    backend.generate([step2], ["\n"], Sampling(max_new_tokens=4), [0])
    assert backend.stats["prefix_tokens_reused"] >= shared

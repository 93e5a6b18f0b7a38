"""Configuration validation: defaults, and errors that name the offending key."""

import copy

import pytest
import yaml

from react.config.validate import ConfigError, load_config, validate_config


@pytest.fixture
def default(project_dir):
    return yaml.safe_load((project_dir / "config/config.yaml").read_text())


def check(config, *fragments):
    with pytest.raises(ConfigError) as info:
        validate_config(copy.deepcopy(config))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_default_config_is_valid_and_gets_defaults(project_dir):
    config = load_config(project_dir / "config/config.yaml")
    assert config["evaluation"]["n_questions"] == 50
    assert config["agent"] == {"max_steps": 7, "max_new_tokens": 100, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                               "protocol": "react"}
    assert config["models"]["smollm2-135m"]["trust_remote_code"] is False
    assert config["evaluation"]["seed"] == 233


def test_unknown_key_is_named(default):
    default["models"]["smollm2-135m"]["backendd"] = "vllm"
    check(default, "config key 'models.smollm2-135m.backendd': unknown key")


def test_unknown_top_level_key_is_named(default):
    default["evaluaton"] = {}
    check(default, "config key 'evaluaton': unknown key")


def test_wrong_type_is_named(default):
    default["evaluation"]["n_questions"] = "fifty"
    check(default, "config key 'evaluation.n_questions'", "'fifty' is not of type")


def test_unknown_model_is_named(default):
    default["evaluation"]["models"] = ["smollm2-135m", "gpt-5"]
    check(default, "config key 'evaluation.models[1]': unknown model 'gpt-5'", "smollm2-135m")


def test_model_needs_exactly_one_source(default):
    default["models"]["two"] = {"path": "/x", "hf_id": "a/b"}
    check(default, "config key 'models.two': give exactly one of gguf, path, hf_id")


def test_model_folder_without_config_is_named(default, tmp_path):
    default["models"]["local"] = {"path": str(tmp_path)}
    check(default, "config key 'models.local.path'", "no config.json")


def test_bad_model_name_is_named(default):
    default["models"]["bad/name"] = {"hf_id": "a/b"}
    check(default, "bad/name")


def test_unknown_split_and_corpus(default):
    default["evaluation"]["split"] = "test"
    default["evaluation"]["corpus"] = "fullwiki"
    check(default, "config key 'evaluation.split': unknown split 'test'",
          "config key 'evaluation.corpus': unknown corpus 'fullwiki'")


def test_missing_bundled_file(default):
    default["data"]["dev"]["files"] = ["nope.jsonl.gz"]
    check(default, "config key 'data.dev.files[0]': file nope.jsonl.gz not found")


def test_official_source_needs_url_and_sha256(default):
    default["data"]["dev"] = {"source": "official"}
    check(default, "config key 'data.dev'", "'url' is a required property")


def test_yaml_that_does_not_parse_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_default_config_finetunes_smollm2_and_evaluates_both(project_dir):
    config = load_config(project_dir / "config/config.yaml")
    assert config["evaluation"]["models"] == ["smollm2-135m", "smollm2-135m-react"]
    run = config["finetune"]["smollm2-135m-react"]
    assert (run["base"], run["preset"], run["prompt"]) == ("smollm2-135m", "cpu", "instruction")
    assert config["teachers"]["oracle"]["samples"] == 1


def test_greedy_teacher_with_several_samples_is_refused(default):
    default["teachers"]["t"] = {"model": "smollm2-135m", "samples": 4}
    check(default, "config key 'teachers.t.samples'", "set teachers.t.temperature > 0")
    default["teachers"]["t"]["temperature"] = 0.7
    validate_config(copy.deepcopy(default))


def test_teacher_needs_oracle_or_model(default):
    default["teachers"]["t"] = {"split": "train"}
    check(default, "config key 'teachers.t'")


def test_dataset_source_and_finetune_references_are_checked(default):
    default["datasets"]["oracle-train"]["sources"] = ["oracle", "nobody"]
    default["finetune"]["smollm2-135m-react"]["base"] = "gpt-5"
    default["finetune"]["smollm2-135m-react"]["hyperparameters"] = {"lr": 1}
    check(default,
          "config key 'datasets.oracle-train.sources[1]': unknown source 'nobody'",
          "config key 'finetune.smollm2-135m-react.base': unknown model 'gpt-5'",
          "config key 'finetune.smollm2-135m-react.hyperparameters': unknown finetuning hyperparameter 'lr'")


def test_finetune_run_cannot_reuse_a_model_name(default):
    default["finetune"]["smollm2-135m"] = {"base": "smollm2-135m", "dataset": "oracle-train"}
    check(default, "config key 'finetune.smollm2-135m': the name is also a model")


def test_import_file_must_exist(default):
    default["imports"] = {"fa": {"format": "fireact", "path": "missing.jsonl"}}
    check(default, "config key 'imports.fa.path': file missing.jsonl not found")


def test_served_model_needs_the_openai_backend_and_back(default):
    default["models"]["served"] = {"url": "http://gpu-node:8000/v1"}
    check(default, "config key 'models.served.url': a server URL goes with `backend: openai`")
    default["models"]["served"] = {"hf_id": "a/b", "backend": "openai"}
    check(default, "config key 'models.served.url'", "needs a url")


def test_served_model_validates_with_url_alone_or_with_the_weights_it_serves(default):
    default["models"]["served"] = {"url": "http://gpu-node:8000/v1", "backend": "openai", "served_model": "m"}
    default["models"]["served-hub"] = {"url": "http://gpu-node:8000/v1", "backend": "openai", "hf_id": "a/b"}
    config = validate_config(copy.deepcopy(default))
    assert config["backends"]["openai"]["max_concurrency"] == 8


def test_a_server_url_alone_cannot_be_finetuned(default):
    default["models"]["served"] = {"url": "http://gpu-node:8000/v1", "backend": "openai"}
    default["finetune"]["smollm2-135m-react"]["base"] = "served"
    check(default, "config key 'finetune.smollm2-135m-react.base': 'served' is only a server URL")


def test_live_corpus_and_the_oracle(default):
    default["corpus"]["wikipedia"] = {"live": {}}
    config = validate_config(copy.deepcopy(default))
    assert config["corpus"]["wikipedia"]["live"]["url"] == "https://en.wikipedia.org"
    assert config["corpus"]["wikipedia"]["live"]["max_retries"] == 5
    default["teachers"]["oracle"]["corpus"] = "wikipedia"
    check(default, "config key 'teachers.oracle.corpus': the oracle teacher looks up the split's own paragraphs")
    default["corpus"]["both"] = {"live": {}, "splits": ["dev"]}
    check(default, "config key 'corpus.both'")


def test_resources_are_checked_by_key(default):
    default["resources"] = {"evaluate": {"gpus": 1}}
    check(default, "config key 'resources.evaluate.gpus': unknown key")
    default["resources"] = {"evaluate": {"mem_mb": -1}}
    check(default, "config key 'resources.evaluate.mem_mb'")
    default["resources"] = {}
    default["models"]["smollm2-135m"]["resources"] = {"runtime": "1h"}
    check(default, "config key 'models.smollm2-135m.resources.runtime'")


def test_prompt_recipe_problems_are_named(default, tmp_path):
    default["prompt"] = {"instruction": "package:prompts/react/instruction.txt",
                         "examples": "package:prompts/react/prompts_naive.json", "key": "webthink_simple7"}
    check(default, "config key 'prompt'", "prompts_naive.json: no string under key 'webthink_simple7'",
          "webthink_simple6")
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": 1,\n')
    default["prompt"] = {"instruction": "package:prompts/react/instruction.txt", "examples": str(broken), "key": "a"}
    check(default, "config key 'prompt'", "broken.json: not valid JSON (line 2")
    default["prompt"] = {"instruction": "package:prompts/react/instruction.txt", "examples": str(broken)}
    check(default, "config key 'prompt'")  # examples without a key
    default["prompt"] = "config/prompts/missing.txt"
    check(default, "config key 'prompt'", "missing.txt: file not found")


def test_protocol_is_react_unless_asked(default):
    default["agent"]["protocol"] = "lenient"
    assert validate_config(copy.deepcopy(default))["agent"]["protocol"] == "lenient"
    default["agent"]["protocol"] = "tolerant"
    check(default, "config key 'agent.protocol'", "'tolerant' is not one of")


def test_configuration_reference_is_generated_from_the_schema(project_dir):
    from react.config.reference import generated_section, reference_markdown

    section = generated_section((project_dir / "docs/configuration.md").read_text(encoding="utf-8"))
    assert section is not None, "docs/configuration.md lacks the generated configuration reference"
    assert section == reference_markdown(), "run: python -m react config-reference --write docs/configuration.md"


def test_config_reference_write_replaces_only_the_generated_section(tmp_path):
    import io

    from react.cli import main
    from react.config.reference import END, START, reference_markdown

    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Reference\n\n{START}\n| stale |\n{END}\n\nafter\n", encoding="utf-8")
    out = io.StringIO()
    assert main(["config-reference", "--write", str(doc)], out=out) == 0
    assert doc.read_text(encoding="utf-8") == f"# Reference\n\n{START}\n{reference_markdown()}{END}\n\nafter\n"
    assert out.getvalue() == f"{doc}: updated\n"
    out = io.StringIO()
    main(["config-reference", "--write", str(doc)], out=out)
    assert out.getvalue() == f"{doc}: already up to date\n"


def test_schema_uses_only_json_schema_keywords(project_dir):
    """A comma in an unquoted YAML flow mapping silently cuts a description into a stray key."""
    keywords = {"type", "description", "default", "enum", "const", "properties", "additionalProperties",
                "required", "oneOf", "allOf", "anyOf", "not", "if", "then", "$ref", "items", "minItems",
                "uniqueItems", "minimum", "maximum", "exclusiveMinimum", "pattern", "propertyNames",
                "minProperties", "$schema", "title", "$defs", "dependentRequired"}
    stray = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                parent = path.rsplit("/", 1)[-1]
                if parent not in ("properties", "$defs", "default", "dependentRequired") and key not in keywords:
                    stray.append(f"{path}/{key}")
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(yaml.safe_load((project_dir / "src/react/config/schema.yaml").read_text()), "")
    assert not stray


def test_fractional_kv_cache_is_refused_before_vllm_reads_it_as_an_integer(default):
    default["backends"]["vllm"]["kv_cache_gib"] = 1.5
    check(default, "backends.vllm.kv_cache_gib")


def test_a_chat_format_needs_a_model_with_a_chat_template(default, tiny_model, tiny_chat_model):
    """Checked before any job: the folder's files, a GGUF's metadata; for a chat finetune, its base."""
    default["models"]["smollm2-135m"]["format"] = "chat"
    validate_config(copy.deepcopy(default))  # the embedded GGUF has one
    default["models"]["plain"] = {"path": str(tiny_model), "format": "chat-inline"}
    check(default, "config key 'models.plain.format': model 'plain' has no chat template")
    default["models"]["plain"]["format"] = "raw"
    default["models"]["chatty"] = {"path": str(tiny_chat_model), "format": "chat"}
    validate_config(copy.deepcopy(default))
    default["finetune"]["plain-react"] = {"base": "plain", "dataset": "oracle-train", "format": "chat"}
    check(default, "config key 'finetune.plain-react.format': model 'plain' has no chat template")


def test_a_served_chat_model_needs_its_template_locally(default):
    default["models"]["served"] = {"url": "http://127.0.0.1:1/v1", "backend": "openai", "format": "chat"}
    check(default, "config key 'models.served.format'", "give it a `tokenizer`")


def test_finetuned_models_are_evaluated_in_the_form_they_were_trained_in(default):
    from react.config.validate import model_spec

    default["finetune"]["smollm2-135m-react"]["format"] = "chat"
    config = validate_config(copy.deepcopy(default))
    assert model_spec(config, "smollm2-135m-react")["format"] == "chat"
    assert model_spec(config, "smollm2-135m")["format"] == "raw"
    default["finetune"]["smollm2-135m-react"]["format"] = "chat-inline"  # not a training form
    check(default, "config key 'finetune.smollm2-135m-react.format'")


@pytest.fixture
def with_rl(default):
    default["rl"] = {"react-grpo": {"start": "smollm2-135m-react"}}
    default["evaluation"]["models"].append("react-grpo")
    return default


def test_an_rl_run_is_a_model_evaluation_can_list(with_rl):
    from react.config.validate import model_location, model_spec

    config = validate_config(with_rl)
    run = config["rl"]["react-grpo"]
    assert (run["split"], run["preset"], run["group_size"], run["reward"]) == ("train", "cpu", None,
                                                                               {"metric": "em", "format_penalty": 0.0})
    spec = model_spec(config, "react-grpo")
    assert (spec["path"], spec["prompt"], spec["backend"]) == ("results/models/react-grpo", "instruction", "vllm")
    assert "gguf" not in spec and model_location(config, "react-grpo") == "results/models/react-grpo"


def test_an_rl_run_that_starts_from_nothing_is_named(with_rl):
    with_rl["rl"]["react-grpo"]["start"] = "gpt-5"
    check(with_rl, "config key 'rl.react-grpo.start': unknown model 'gpt-5'", "smollm2-135m-react")


def test_an_rl_run_on_the_evaluation_questions_is_refused(with_rl):
    with_rl["rl"]["react-grpo"]["split"] = "dev"
    check(with_rl, "config key 'rl.react-grpo.split': 'dev' is the evaluation split")


def test_an_rl_group_of_one_is_refused_before_any_job(with_rl):
    with_rl["rl"]["react-grpo"]["group_size"] = 1
    check(with_rl, "config key 'rl.react-grpo.group_size': 1: GRPO's advantage is a reward minus its group's mean")


def test_rl_keys_are_checked(with_rl):
    with_rl["rl"]["react-grpo"].update(reward={"metric": "bleu"}, micro_batch_size=3)
    check(with_rl, "config key 'rl.react-grpo.reward.metric'")
    del with_rl["rl"]["react-grpo"]["reward"]
    check(with_rl, "config key 'rl.react-grpo.micro_batch_size': 3 does not divide the 4 rollouts of a step")
    with_rl["rl"]["react-grpo"] = {"start": "smollm2-135m", "corpus": "nowhere"}
    check(with_rl, "config key 'rl.react-grpo.corpus': unknown corpus 'nowhere'")
    with_rl["rl"]["smollm2-135m-react"] = {"start": "smollm2-135m"}
    check(with_rl, "config key 'rl.smollm2-135m-react': the name is also a model")


def test_the_rl_preset_extends_the_default(project_dir):
    default = load_config(project_dir / "config/config.yaml")
    rl = load_config(project_dir / "config/rl.yaml")
    assert {k: v for k, v in rl.items() if k != "evaluation"} == \
        {k: v for k, v in default.items() if k != "evaluation"} | {"rl": rl["rl"]}
    assert rl["evaluation"]["models"] == [*default["evaluation"]["models"], "smollm2-135m-react-grpo"]
    assert rl["rl"]["smollm2-135m-react-grpo"]["start"] == "smollm2-135m-react"

"""Deriving Ollama (Go) chat templates from Hugging Face (Jinja) ones."""

from __future__ import annotations

import pytest

from fakes.ollama_server import render_go_template
from levcustom.deploy.chat_template import UnsupportedTemplate, chat_format
from tinymodel import CHAT_TEMPLATE

CHATML_WITH_DEFAULT_SYSTEM = (  # SmolLM2-Instruct's template
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
CONVERSATION = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": '{"tool": "weather"}'}, {"role": "user", "content": "And Rome?"}]


def jinja(template: str, messages, bos: str = "") -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos)


def go(fmt, messages) -> str:
    """What Ollama renders: the derived Go template over its Role/Content message structs."""
    return render_go_template(fmt.go_template(), {"Messages": [{"Role": m["role"], "Content": m["content"]}
                                                               for m in messages]})


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, CHATML_WITH_DEFAULT_SYSTEM, LLAMA3])
def test_go_template_renders_what_jinja_renders(template):
    fmt = chat_format(template)
    assert go(fmt, CONVERSATION) == jinja(template, CONVERSATION)


def test_default_system_prompt_becomes_ollama_system():
    fmt = chat_format(CHATML_WITH_DEFAULT_SYSTEM)
    assert fmt.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert fmt.prefix["user"] == "<|im_start|>user\n" and fmt.suffix["system"] == "<|im_end|>\n"
    # Ollama sends SYSTEM as a first system message when a chat has none.
    without = CONVERSATION[1:]
    assert go(fmt, [{"role": "system", "content": fmt.default_system}] + without) == \
        jinja(CHATML_WITH_DEFAULT_SYSTEM, without)
    assert chat_format(CHAT_TEMPLATE).default_system is None


def test_templates_that_are_not_role_wrappers_are_refused():
    numbered = "{% for m in messages %}{{ loop.index }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(UnsupportedTemplate):
        chat_format(numbered)
    strict = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}x"
    with pytest.raises(UnsupportedTemplate, match="refused a probe"):
        chat_format(strict)

"""An Ollama chat template (Go ``text/template``) equivalent to a model's Hugging Face (Jinja) one.

Jinja cannot be translated in general, but most chat templates wrap each message in a fixed
per-role prefix and suffix (ChatML, Llama 3, Phi-3, Zephyr, ...). Those pieces are found by
rendering the Jinja template on marker messages; the result is accepted only if the pieces
reproduce the Jinja rendering of a multi-turn conversation exactly. A template that inserts a
default system prompt when none is given yields it as ``default_system`` (Ollama's ``SYSTEM``).
Anything else asks the user for ``deploy.ollama.template``.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("system", "user", "assistant")
# Markers no template trims or escapes (ASCII control characters count as whitespace for trim).
_MARK = {role: f"\u27e6{role.upper()}\u27e7" for role in ROLES}


class UnsupportedTemplate(ValueError):
    """The chat template is not a per-role wrapper; the spec must give an Ollama template."""


@dataclass(frozen=True)
class ChatFormat:
    """Per-role text around each message's content, and the text that opens the model's answer."""

    prefix: dict[str, str]
    suffix: dict[str, str]
    generation: str
    default_system: str | None = None

    def render(self, messages: list[dict[str, str]]) -> str:
        """What the Go template renders for ``messages`` (the prompt Ollama feeds the model)."""
        text = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return text + self.generation

    def go_template(self) -> str:
        """The Ollama ``TEMPLATE``: each message wrapped by role, then the answer's opening."""
        branches = []
        for i, role in enumerate(ROLES):
            keyword = "if" if i == 0 else "else if"
            branches.append(f'{{{{ {keyword} eq .Role "{role}" }}}}{_go_text(self.prefix[role])}{{{{ .Content }}}}'
                            f"{_go_text(self.suffix[role])}")
        return "{{- range .Messages }}" + "".join(branches) + "{{ end }}{{ end }}" + _go_text(self.generation)


def _go_text(text: str) -> str:
    if "{{" in text or "}}" in text:
        raise UnsupportedTemplate("the chat template's role markers contain '{{' or '}}'")
    return text


def _renderer(template: str, bos_token: str, eos_token: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    # The environment transformers renders chat templates with.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        try:
            return compiled.render(messages=messages, add_generation_prompt=generation, bos_token=bos_token,
                                   eos_token=eos_token)
        except TemplateError as exc:
            raise UnsupportedTemplate(f"the chat template refused a probe conversation: {exc}") from None

    return render


def _between(text: str, start: str | None, end: str | None) -> str:
    """The text after marker ``start`` (or from the beginning) up to marker ``end`` (or the end)."""
    i = 0 if start is None else text.index(start) + len(start)
    j = len(text) if end is None else text.index(end, i)
    return text[i:j]


def chat_format(template: str, bos_token: str = "", eos_token: str = "") -> ChatFormat:
    """Probe a Jinja chat template for its per-role pieces (raises ``UnsupportedTemplate``)."""
    render = _renderer(template, bos_token, eos_token)
    s, u, a = (_MARK[r] for r in ROLES)
    msg = {r: {"role": r, "content": _MARK[r]} for r in ROLES}
    with_system = render([msg["system"], msg["user"], msg["assistant"]], False)
    user_only = render([msg["user"]], False)
    user_gen = render([msg["user"]], True)
    try:
        sys_prefix = _between(with_system, None, s)
        user_suffix = _between(user_only, u, None)
        assistant_suffix = _between(with_system, a, None)
        user_prefix = _between(with_system, s, u)  # = system suffix + user prefix, split below
        assistant_prefix = _between(with_system, u, a)
    except ValueError:
        raise UnsupportedTemplate("the chat template drops or reorders message contents") from None
    if not assistant_prefix.startswith(user_suffix) or not user_gen.startswith(user_only):
        raise UnsupportedTemplate("the chat template's pieces depend on position in the conversation")
    generation = user_gen[len(user_only):]
    assistant_prefix = assistant_prefix[len(user_suffix):]
    # Where the system suffix ends and the user prefix starts is ambiguous in the text between them;
    # without a system message some templates also insert a default one. Take the first split whose
    # pieces reproduce the Jinja renderings.
    alone_prefix = _between(user_only, None, u)
    for system_suffix, default_system in _system_splits(sys_prefix, user_prefix, alone_prefix):
        fmt = ChatFormat(prefix={"system": sys_prefix, "user": user_prefix[len(system_suffix):],
                                 "assistant": assistant_prefix},
                         suffix={"system": system_suffix, "user": user_suffix, "assistant": assistant_suffix},
                         generation=generation, default_system=default_system)
        if _reproduces(fmt, render):
            return fmt
    raise UnsupportedTemplate("the chat template is not a fixed per-role wrapper")


def _system_splits(sys_prefix: str, between: str, alone_prefix: str):
    """Candidate (system suffix, default system prompt) pairs: no default first, then by suffix length."""
    cuts = [(between[:cut], between[cut:]) for cut in range(len(between) + 1)]
    yield from ((suffix, None) for suffix, user_prefix in cuts if alone_prefix == user_prefix)
    for suffix, user_prefix in reversed(cuts):
        tail = suffix + user_prefix
        if alone_prefix.startswith(sys_prefix) and alone_prefix.endswith(tail) \
                and len(alone_prefix) > len(sys_prefix) + len(tail):
            yield suffix, alone_prefix[len(sys_prefix):len(alone_prefix) - len(tail)]


def _reproduces(fmt: ChatFormat, render) -> bool:
    """The pieces must reproduce the Jinja rendering of a multi-turn conversation exactly."""
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2+2?"}]
    if fmt.render(conversation) != render(conversation, True):
        return False
    if fmt.default_system is None:
        return True
    implicit = conversation[1:]
    return fmt.render([{"role": "system", "content": fmt.default_system}] + implicit) == render(implicit, True)

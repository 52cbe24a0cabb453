#!/usr/bin/env python3
"""Generate the expected renders of tests/data/chat (run ONCE by hand, results committed).

Every template in tests/data/chat/templates/ (sources in templates.json) is rendered with
Jinja2 for every conversation in conversations.json, in the environment Hugging Face's
apply_chat_template builds (transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), a tojson
filter that is json.dumps(ensure_ascii=False, ...), raise_exception and strftime_now globals.
strftime_now formats the fixed time NOW in UTC, as tests/test_chat_template.c asks moerun to.
The variables are the ones moerun passes: messages, add_generation_prompt, bos_token,
eos_token, tools (None when absent) and the conversation's "extra" keys.
A render that raises writes NAME.CONV.err (the exception text) instead of NAME.CONV.txt.
The small templates of snippets.json ([template, variables] pairs, one feature each) are
rendered into snippets.expected.json ({"out": text} or {"err": message}).

Usage: python3 tests/gen_chat_expected.py   (needs python3-jinja2)
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = 1764720000  # 2025-12-03 00:00:00 UTC

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "chat")


def env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).strftime(fmt)

    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=["jinja2.ext.loopcontrols"])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = strftime_now
    return e


def main():
    templates = json.load(open(os.path.join(here, "templates.json")))
    convs = json.load(open(os.path.join(here, "conversations.json")))
    out = os.path.join(here, "expected")
    os.makedirs(out, exist_ok=True)
    e = env()
    for name, meta in templates.items():
        src = open(os.path.join(here, "templates", name + ".jinja"), encoding="utf-8").read()
        t = e.from_string(src)
        for cname, conv in convs.items():
            ctx = dict(messages=conv["messages"], add_generation_prompt=conv["add_generation_prompt"],
                       bos_token=meta["bos"], eos_token=meta["eos"], tools=conv.get("tools"))
            ctx.update(conv.get("extra", {}))
            base = os.path.join(out, f"{name}.{cname}")
            for ext in (".txt", ".err"):
                if os.path.exists(base + ext):
                    os.remove(base + ext)
            try:
                text = t.render(**ctx)
                with open(base + ".txt", "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            except Exception as ex:  # the template refuses this conversation
                with open(base + ".err", "w", encoding="utf-8") as f:
                    f.write(f"{type(ex).__name__}: {ex}\n")
    snippets = json.load(open(os.path.join(here, "snippets.json")))
    results = []
    for src, variables in snippets:
        try:
            results.append({"out": e.from_string(src).render(**variables)})
        except Exception as ex:
            results.append({"err": f"{type(ex).__name__}: {ex}"})
    with open(os.path.join(here, "snippets.expected.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"jinja2 {jinja2.__version__}: {len(templates)} templates x {len(convs)} conversations",
          file=sys.stderr)


if __name__ == "__main__":
    main()

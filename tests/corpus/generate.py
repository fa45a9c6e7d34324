#!/usr/bin/env python3
"""Generates the bad-input corpus under tests/corpus/cases/.

Every case is a directory holding `case.json` and its input: a `project/` directory or a
`project.tar` (binary tars are crafted here byte by byte, so they are reproducible).
The generated files are committed; rerun this script after editing it:

    python3 tests/corpus/generate.py

`case.json` fields (read by crates/compose-cli/tests/integration/corpus.rs):
  description  what the case is about
  category     yaml | interpolation | forbidden | tar | directory | dockerfile | target |
               balena-yml | registry-secrets | cli
  args         the command line; `{project}` is the case's project (a fresh copy of
               `project/`, or of `project.tar`), `{out}` the output directory, `{tmp}` the
               case's scratch directory (outside the working directory)
  stdin        a file of the case fed on standard input (optional)
  setup        {"symlinks": [[path in project, target]],
                "generated": [{"path", "head", "repeat", "times", "tail"}]}
               symlinks and big files made at run time (nothing huge is committed)
  env          extra environment variables (the environment is otherwise empty)
  needs_docker the case talks to the daemon ($DOCKER_HOST)
  exit         the expected exit code
  stderr       a fragment stderr must contain (optional)
  stdout       a fragment stdout must contain (optional)
  stderr_not   a fragment stderr must NOT contain (a secret, a raw control character)
  known_bug    set when the current behaviour is wrong: the runner reports the mismatch
               but does not fail on it
"""

import gzip
import io
import json
import os
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")

APP_COMPOSE = "services:\n  app:\n    build: ./app\n"
APP_DOCKERFILE = "FROM local/amd64-busybox\nRUN true\n"
RESOLVE = ["resolve", "{project}", "--arch", "amd64", "-o", "{out}"]
CONFIG = ["config", "{project}"]

_names = set()
_pax_bodies = []


def case(name, category, description, args, exit, files=None, tar=None, stderr=None,
         stdout=None, stdin=None, setup=None, env=None, needs_docker=False, known_bug=None,
         stderr_not=None):
    """Writes one case. `files` maps project paths to str/bytes; `tar` is project.tar bytes."""
    assert name not in _names, name
    _names.add(name)
    root = os.path.join(CASES, name)
    os.makedirs(root)
    spec = {"description": description, "category": category, "args": args, "exit": exit}
    for key, value in (("stderr", stderr), ("stdout", stdout), ("stdin", stdin),
                       ("setup", setup), ("env", env), ("known_bug", known_bug),
                       ("stderr_not", stderr_not)):
        if value is not None:
            spec[key] = value
    if needs_docker:
        spec["needs_docker"] = True
    if files is not None:
        for path, data in files.items():
            full = os.path.join(root, "project", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
        os.makedirs(os.path.join(root, "project"), exist_ok=True)
    if tar is not None:
        with open(os.path.join(root, "project.tar"), "wb") as f:
            f.write(tar)
    with open(os.path.join(root, "case.json"), "w") as f:
        json.dump(spec, f, indent=2, ensure_ascii=False)
        f.write("\n")


def gen(path, head, repeat, times, tail):
    """A `setup` that writes a big file at run time instead of committing it."""
    return {"generated": [{"path": path, "head": head, "repeat": repeat, "times": times, "tail": tail}]}


def compose(text, **kw):
    """A `config` case of one compose file."""
    return {"docker-compose.yml": text, **kw}


def app(**extra):
    """The minimal buildable project plus `extra` files."""
    files = {"docker-compose.yml": APP_COMPOSE, "app/Dockerfile": APP_DOCKERFILE}
    files.update(extra)
    return files


# ------------------------------------------------------------------------------------------
# Raw tar building: headers written by hand so that hostile fields survive.
# ------------------------------------------------------------------------------------------

def _octal(value, width):
    return (b"%0*o" % (width - 1, value)) + b"\0"


def header(name, size=0, typeflag=b"0", linkname=b"", mode=0o644, checksum=True,
           size_field=None, magic=b"ustar\x0000", prefix=b"", mtime=0):
    name = name.encode() if isinstance(name, str) else name
    linkname = linkname.encode() if isinstance(linkname, str) else linkname
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(0, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = size_field if size_field is not None else _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname[:100])] = linkname[:100]
    h[257:265] = magic
    h[345:345 + len(prefix[:155])] = prefix[:155]
    if checksum:
        h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad(data):
    return data + b"\0" * (-len(data) % 512)


def entry(name, data=b"", **kw):
    data = data.encode() if isinstance(data, str) else data
    return header(name, size=len(data), **kw) + pad(data)


def pax(records, name="PaxHeader"):
    body = b""
    for key, value in records:
        value = value.encode() if isinstance(value, str) else value
        line = b" " + key.encode() + b"=" + value + b"\n"
        # The record length counts its own digits.
        length = len(line) + 1
        while len(line) + len(str(length)) != length:
            length = len(line) + len(str(length))
        body += str(length).encode() + line
    if len(body) <= 8192 and body not in _pax_bodies:
        _pax_bodies.append(body)  # seeds for the `tar_pax` fuzz target
    return header(name, size=len(body), typeflag=b"x") + pad(body)


def gnu_long(kind, value):
    value = (value.encode() if isinstance(value, str) else value) + b"\0"
    return header("././@LongLink", size=len(value), typeflag=kind, magic=b"ustar  \0") + pad(value)


def gnu_sparse(name, real_size, chunks, stored=None):
    """An old GNU sparse member (typeflag S): up to 4 (offset, data) chunks in the header."""
    data = b"".join(d for _, d in chunks)
    size = len(data) if stored is None else stored
    h = bytearray(header(name, size=size, typeflag=b"S", magic=b"ustar  \0", checksum=False))
    for i, (offset, d) in enumerate(chunks):
        h[386 + 24 * i:398 + 24 * i] = _octal(offset, 12)
        h[398 + 24 * i:410 + 24 * i] = _octal(len(d), 12)
    h[483:495] = _octal(real_size, 12)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + pad(data[:size])


END = b"\0" * 1024


def app_entries():
    return entry("docker-compose.yml", APP_COMPOSE) + entry("app/Dockerfile", APP_DOCKERFILE)


def tar_of(*parts, end=True):
    return b"".join(parts) + (END if end else b"")


def tarfile_of(members):
    """A tar made by Python's tarfile: members are (TarInfo, data) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            data = data.encode() if isinstance(data, str) else data
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def tinfo(name, type=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.mode = 0o644
    return info


# ------------------------------------------------------------------------------------------
# The cases.
# ------------------------------------------------------------------------------------------

# Values the parser coerces, drops or passes through as the reference does: success, with
# the normalised value it prints.
LENIENT = {
    "type-build-int": 'context: "5"',
    "type-container-name-list": "image: x",
    "type-expose-map": "image: x",
    "type-extra-hosts-int": '- "5"',
    "type-tmpfs-int": '- "5"',
    "type-healthcheck-string": 'healthcheck: "yes"',
    "type-labels-list-of-ints": '"1": ""',
    "type-network-mode-int": 'network_mode: "5"',
    "type-version-map": "image: x",
    "type-bool-restart": "privileged: maybe",
}


def yaml_cases():
    c = "yaml"
    ok_tail = "services:\n  s:\n    image: alpine\n"
    case("yaml-deep-flow-sequence", c, "10k nested flow sequences", CONFIG, 1,
         files={}, stderr="docker-compose.yml",
         setup={"generated": [{"path": "docker-compose.yml", "head": "x: ",
                               "repeat": "[", "times": 10000, "tail": "\n"}]})
    case("yaml-deep-flow-mapping", c, "10k nested flow mappings", CONFIG, 1,
         files={}, stderr="docker-compose.yml",
         setup={"generated": [{"path": "docker-compose.yml", "head": "x: ",
                               "repeat": "{a: ", "times": 10000, "tail": "\n"}]})
    deep_block = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    case("yaml-deep-block-mapping", c, "200 nested block mappings under x-deep", CONFIG, 1,
         files=compose("x-deep:\n" + "\n".join("  " + l for l in deep_block.splitlines()) + "\n" + ok_tail),
         stderr="docker-compose.yml")
    deep_services = "services:\n  s:\n    image: alpine\n    labels:\n      a: " + "[" * 100 + "]" * 100 + "\n"
    case("yaml-deep-in-labels", c, "100 nested sequences as a label value", CONFIG, 1,
         files=compose(deep_services), stderr="docker-compose.yml")
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        laughs.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    laughs.append("services: {s: {image: alpine, labels: {x: *i}}}")
    case("yaml-billion-laughs", c, "billion laughs: 9 levels of 9 aliases", CONFIG, 1,
         files=compose("\n".join("x-" + l if not l.startswith("services") else l for l in laughs) + "\n"),
         stderr="docker-compose.yml")
    quad = ["x-a: &a " + "x" * 1000]
    quad.append("x-b: &b [" + ",".join(["*a"] * 1000) + "]")
    quad.append("x-c: [" + ",".join(["*b"] * 1000) + "]")
    quad.append(ok_tail)
    case("yaml-alias-quadratic", c, "a 1000x1000 alias fan-out of 1 kB scalars", CONFIG, 1,
         files=compose("\n".join(quad)), stderr="docker-compose.yml")
    merge_bomb = ["x-a: &a {k0: v}"]
    for i in range(1, 30):
        merge_bomb.append(f"x-a{i}: &a{i} {{<<: [*{'a' if i == 1 else 'a' + str(i - 1)}, *{'a' if i == 1 else 'a' + str(i - 1)}], k{i}: v}}")
    merge_bomb.append("services: {s: {image: alpine, x-m: *a29}}")
    case("yaml-merge-key-chain", c, "29 chained merge keys, each merging the previous twice", CONFIG, 1,
         files=compose("\n".join(merge_bomb) + "\n"), stderr="docker-compose.yml")
    case("yaml-huge-scalar", c, "an 8 MB plain scalar image name: accepted, in bounded time", CONFIG, 0,
         files={}, stdout="image: ",
         setup={"generated": [{"path": "docker-compose.yml",
                               "head": "services:\n  s:\n    image: ", "repeat": "a",
                               "times": 8_000_000, "tail": "\n"}]})
    case("yaml-huge-key", c, "a 1 MB mapping key", CONFIG, 1,
         files={}, stderr="docker-compose.yml",
         setup={"generated": [{"path": "docker-compose.yml", "head": "services:\n  ",
                               "repeat": "k", "times": 1_000_000,
                               "tail": ":\n    image: alpine\n"}]})
    case("yaml-many-services", c, "20k services: accepted, just big", ["config", "{project}", "--services"], 0,
         files={}, stdout="s19999",
         setup={"generated": [{"path": "docker-compose.yml", "head": "services:\n",
                               "repeat_numbered": "  s{n}: {image: alpine}\n",
                               "times": 20000, "tail": ""}]})
    dups = [
        ("yaml-duplicate-top-key", "services:\n  a: {image: x}\nservices:\n  b: {image: y}\n"),
        ("yaml-duplicate-service", "services:\n  a: {image: x}\n  a: {image: y}\n"),
        ("yaml-duplicate-service-key", "services:\n  a:\n    image: x\n    image: y\n"),
        ("yaml-duplicate-env-key", "services:\n  a:\n    image: x\n    environment:\n      A: 1\n      A: 2\n"),
        ("yaml-duplicate-label-key", "services:\n  a:\n    image: x\n    labels:\n      l: 1\n      l: 2\n"),
        ("yaml-duplicate-build-key", "services:\n  a:\n    build:\n      context: .\n      context: ./b\n"),
        ("yaml-duplicate-flow-key", "services: {a: {image: x, image: y}}\n"),
        ("yaml-duplicate-volume", "services: {a: {image: x}}\nvolumes:\n  v: {}\n  v: {}\n"),
    ]
    for name, text in dups:
        case(name, c, "a duplicate mapping key is an error, not last-wins", CONFIG, 1,
             files=compose(text), stderr="duplicate")
    syntax = [
        ("yaml-tab-indent", "services:\n\ta:\n\t\timage: x\n"),
        ("yaml-unclosed-double-quote", 'services:\n  a:\n    image: "x\n'),
        ("yaml-unclosed-single-quote", "services:\n  a:\n    image: 'x\n"),
        ("yaml-unclosed-flow-seq", "services:\n  a:\n    ports: [80, 81\n"),
        ("yaml-unclosed-flow-map", "services: {a: {image: x}\n"),
        ("yaml-bad-indent", "services:\n  a:\n    image: x\n   build: .\n"),
        ("yaml-undefined-alias", "services:\n  a: *nothere\n"),
        ("yaml-alias-to-itself", "x-a: &a [*a]\nservices: {s: {image: x}}\n"),
        ("yaml-bad-escape", 'services:\n  a:\n    image: "\\q"\n'),
        ("yaml-colon-in-key-flow", "services: {a: {image: x: y}}\n"),
        ("yaml-stray-bracket", "services:\n  a:\n    image: x\n]\n"),
        ("yaml-directive-garbage", "%YAML 9.9\n%FOO\n---\nservices: {a: {image: x}}\n"),
        ("yaml-two-documents", "services: {a: {image: x}}\n---\nservices: {b: {image: y}}\n"),
        ("yaml-anchor-on-nothing", "services:\n  a: &\n"),
        ("yaml-block-scalar-bad-indicator", "services:\n  a:\n    command: |9x\n      hi\n"),
        ("yaml-control-char", "services:\n  a:\n    image: \"x\x07\"\n"),
        ("yaml-merge-of-scalar", "services:\n  a:\n    <<: 5\n    image: x\n"),
        ("yaml-merge-of-sequence-of-scalars", "services:\n  a:\n    <<: [1, 2]\n    image: x\n"),
    ]
    for name, text in syntax:
        case(name, c, "malformed YAML names the file", CONFIG, 1, files=compose(text),
             stderr="docker-compose.yml")
    encodings = [
        ("yaml-invalid-utf8", b"services:\n  a:\n    image: \xff\xfe\xfd\n"),
        ("yaml-nul-byte", b"services:\n  a:\n    image: x\x00y\n"),
        ("yaml-utf16le", "services:\n  a:\n    image: x\n".encode("utf-16")),
        ("yaml-lone-surrogate-escape", b'services:\n  a:\n    image: "\\ud800"\n'),
    ]
    for name, data in encodings:
        case(name, c, "a compose file that is not valid UTF-8 YAML", CONFIG, 1,
             files=compose(data), stderr="docker-compose.yml")
    for name, text in [("yaml-empty-services", "services: {}\n"), ("yaml-null-services", "services:\n")]:
        case(name, c, "a composition without services is valid", CONFIG, 0, files=compose(text),
             stdout="services: {}")
    case("yaml-utf8-bom", c, "a UTF-8 byte order mark is accepted", CONFIG, 0,
         files=compose(b"\xef\xbb\xbfservices:\n  a:\n    image: x\n"), stdout="image: x")
    case("yaml-crlf", c, "CRLF line ends are accepted", CONFIG, 0,
         files=compose("services:\r\n  a:\r\n    image: x\r\n"), stdout="image: x")
    case("yaml-unicode-service-name", c, "a non-ASCII service name", CONFIG, 1,
         files=compose("services:\n  ü:\n    image: x\n"), stderr="ü")
    empties = [
        ("yaml-empty-file", ""),
        ("yaml-only-comment", "# nothing\n"),
        ("yaml-null-document", "~\n"),
        ("yaml-scalar-document", "hello\n"),
        ("yaml-sequence-document", "- services\n"),
        ("yaml-document-end-only", "...\n"),
    ]
    for name, text in empties:
        case(name, c, "a document with no services", CONFIG, 1, files=compose(text),
             stderr="docker-compose.yml")
    wrong = [
        ("type-services-list", "services: [a, b]\n", None),
        ("type-services-string", "services: web\n", None),
        ("type-service-string", "services:\n  a: alpine\n", "a"),
        ("type-service-list", "services:\n  a: [image, x]\n", "a"),
        ("type-image-list", "services:\n  a:\n    image: [x]\n", "image"),
        ("type-image-map", "services:\n  a:\n    image: {x: 1}\n", "image"),
        ("type-build-int", "services:\n  a:\n    build: 5\n", "build"),
        ("type-build-list", "services:\n  a:\n    build: [.]\n", "build"),
        ("type-build-context-map", "services:\n  a:\n    build: {context: {a: b}}\n", "context"),
        ("type-build-args-int", "services:\n  a:\n    build: {context: ., args: 5}\n", "args"),
        ("type-ports-map", "services:\n  a:\n    image: x\n    ports: {80: 80}\n", "ports"),
        ("type-ports-string", "services:\n  a:\n    image: x\n    ports: \"80:80\"\n", "ports"),
        ("type-ports-bad-entry", "services:\n  a:\n    image: x\n    ports: [[80]]\n", "must be a string"),
        ("type-port-out-of-range", "services:\n  a:\n    image: x\n    ports: [\"99999:80\"]\n", "Invalid hostPort: 99999"),
        ("type-port-garbage", "services:\n  a:\n    image: x\n    ports: [\"a:b:c:d:e\"]\n", "Invalid containerPort"),
        ("type-environment-int", "services:\n  a:\n    image: x\n    environment: 5\n", "environment"),
        ("type-environment-nested", "services:\n  a:\n    image: x\n    environment: {A: {B: 1}}\n", "environment"),
        ("type-labels-list-of-ints", "services:\n  a:\n    image: x\n    labels: [1, 2]\n", "labels"),
        ("type-labels-nested", "services:\n  a:\n    image: x\n    labels: {a: [1]}\n", "labels"),
        ("type-depends-on-int", "services:\n  a:\n    image: x\n    depends_on: 5\n", "undefined service \"5\""),
        ("type-depends-on-unknown", "services:\n  a:\n    image: x\n    depends_on: [nope]\n", "nope"),
        ("type-volumes-string", "services:\n  a:\n    image: x\n    volumes: /data\n", "volumes"),
        ("type-volumes-bad-entry", "services:\n  a:\n    image: x\n    volumes: [{type: bind}]\n", "volumes"),
        ("type-volume-undeclared", "services:\n  a:\n    image: x\n    volumes: [\"v:/v\"]\n", "v"),
        ("type-networks-int", "services:\n  a:\n    image: x\n    networks: 5\n", "networks"),
        ("type-network-undeclared", "services:\n  a:\n    image: x\n    networks: [nope]\n", "nope"),
        ("type-extra-hosts-int", "services:\n  a:\n    image: x\n    extra_hosts: 5\n", "extra_hosts"),
        ("type-devices-map", "services:\n  a:\n    image: x\n    devices: {a: b}\n", "devices"),
        ("type-tmpfs-int", "services:\n  a:\n    image: x\n    tmpfs: 5\n", "tmpfs"),
        ("type-security-opt-map", "services:\n  a:\n    image: x\n    security_opt: {a: b}\n", "security_opt"),
        ("type-expose-map", "services:\n  a:\n    image: x\n    expose: {a: b}\n", "expose"),
        ("type-env-file-int", "services:\n  a:\n    image: x\n    env_file: 5\n", "project/5"),
        ("type-container-name-list", "services:\n  a:\n    image: x\n    container_name: [x]\n", "container_name"),
        ("type-network-mode-int", "services:\n  a:\n    image: x\n    network_mode: 5\n", "network_mode"),
        ("type-networks-top-list", "services: {a: {image: x}}\nnetworks: [a]\n", "networks"),
        ("type-volumes-top-list", "services: {a: {image: x}}\nvolumes: [a]\n", "volumes"),
        ("type-network-string", "services: {a: {image: x}}\nnetworks: {n: bridge}\n", "n"),
        ("type-volume-string", "services: {a: {image: x}}\nvolumes: {v: local}\n", "v"),
        ("type-version-map", "version: {a: 1}\nservices: {a: {image: x}}\n", "version"),
        ("type-no-image-no-build", "services:\n  a:\n    restart: always\n", "a"),
        ("type-unknown-service-key", "services:\n  a:\n    image: x\n    imagee: y\n", "imagee"),
        ("type-unknown-build-key", "services:\n  a:\n    build: {context: ., contxt: .}\n", "contxt"),
        ("type-unknown-top-key", "services: {a: {image: x}}\nservicez: {}\n", "servicez"),
        ("type-extends-missing", "services:\n  a:\n    extends: nope\n", "nope"),
        ("type-extends-cycle", "services:\n  a:\n    extends: b\n  b:\n    extends: a\n", "extends"),
        ("type-extends-self", "services:\n  a:\n    image: x\n    extends: a\n", "extends"),
        ("type-healthcheck-string", "services:\n  a:\n    image: x\n    healthcheck: yes\n", "healthcheck"),
        ("type-bool-restart", "services:\n  a:\n    image: x\n    privileged: maybe\n", "privileged"),
    ]
    for name, text, fragment in wrong:
        if name in LENIENT:
            case("yaml-" + name, c, "an odd value the reference also accepts (coerced, dropped or passed through)",
                 CONFIG, 0, files=compose(text), stdout=LENIENT[name])
        else:
            case("yaml-" + name, c, "a field of the wrong type or value", CONFIG, 1,
                 files=compose(text), stderr=fragment or "docker-compose.yml")
    case("yaml-tagged-binary", c, "a !!binary tag is decoded", CONFIG, 0,
         files=compose("services:\n  a:\n    image: !!binary aGVsbG8=\n"), stdout="image: hello")
    case("yaml-custom-tag", c, "an application tag is ignored, the value is used",
         CONFIG, 0, files=compose("services:\n  a:\n    image: !custom x\n"), stdout="image: x")
    case("yaml-x-extension-ok", c, "x- extension fields are accepted", CONFIG, 0,
         files=compose("x-common: &c {image: alpine}\nservices:\n  a:\n    <<: *c\n    x-note: hi\n"),
         stdout="image: alpine")
    case("yaml-numeric-service-name", c, "a numeric service name", CONFIG, 0,
         files=compose("services:\n  123:\n    image: x\n"), stdout='"123":')
    case("yaml-service-name-with-slash", c, "a service name with a slash", CONFIG, 1,
         files=compose("services:\n  a/b:\n    image: x\n"), stderr="a/b")
    case("yaml-service-name-dotdot", c, "a service named ..", CONFIG, 1,
         files=compose("services:\n  ..:\n    image: x\n"), stderr="..")
    case("yaml-anchor-shared-by-150-services", c, "one anchor merged into 150 services is fine",
         ["config", "{project}", "--services"], 0, files=compose(
             "x-common: &common {image: alpine, restart: always}\nservices:\n"
             + "".join(f"  s{i}: {{<<: *common}}\n" for i in range(150))), stdout="s149")
    case("yaml-escape-sequence-in-service-name", c,
         "a service name with terminal escapes is not echoed raw", CONFIG, 1,
         files=compose("services:\n  \"\\e]2;pwned\\a\":\n    image: x\n"),
         stderr="invalid service name", stderr_not="\x1b]2;")
    case("yaml-escape-sequence-in-key", c, "an unknown key with terminal escapes is not echoed raw",
         CONFIG, 1, files=compose("services:\n  a:\n    image: x\n    \"\\e]2;pwned\\a\": 1\n"),
         stderr="unknown key", stderr_not="\x1b]2;")
    case("yaml-anchors-shared-by-800-services", c,
         "several anchors each used 800 times with a small expansion are fine (the budget is "
         "on the expanded size, not the alias count)",
         ["config", "{project}", "--services"], 0,
         setup={"generated": [{"path": "docker-compose.yml",
                               "head": "x-common: &common {image: alpine, restart: always, "
                                       "labels: {a: b, c: d}, environment: [A=1, B=2]}\n"
                                       "x-ports: &ports [\"80\", \"443\"]\nservices:\n",
                               "repeat_numbered": "  s{n}: {<<: *common, ports: *ports}\n",
                               "times": 800, "tail": ""}]},
         stdout="s799")
    case("yaml-alias-bomb-message", c,
         "an alias bomb is refused with a sentence naming file and line, not a Debug dump",
         CONFIG, 1, files=compose("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
             f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9))),
         stderr="docker-compose.yml:", stderr_not="{")


def interpolation_cases():
    c = "interpolation"
    bad = [
        ("interp-unclosed-brace", "image: ${TAG", "TAG"),
        ("interp-empty-name", "image: ${}", "${}"),
        ("interp-bad-name", "image: ${1TAG}", "1TAG"),
        ("interp-bad-operator", "image: ${TAG/x/y}", "TAG"),
        ("interp-required-unset", "image: ${TAG:?you must set TAG}", "you must set TAG"),
        ("interp-required-unset-no-colon", "image: ${TAG?TAG is needed}", "TAG is needed"),
        ("interp-required-empty", "image: ${EMPTY:?EMPTY must not be empty}", "EMPTY must not be empty"),
        ("interp-dollar-space", "image: x${ TAG}", "TAG"),
        ("interp-nested-unclosed", "image: ${A:-${B}", "docker-compose.yml"),
        ("interp-only-dollar-brace", "image: ${", "docker-compose.yml"),
        ("interp-in-key-unclosed", "labels: {\"${X\": y}\n    image: x", "docker-compose.yml"),
    ]
    for name, line, fragment in bad:
        case(name, c, "bad interpolation is an error naming the variable or file", CONFIG, 1,
             files=compose("services:\n  a:\n    " + line + "\n"), stderr=fragment,
             env={"EMPTY": ""})
    good = [
        ("interp-escaped-dollar", "image: x\n    command: echo $$HOME", "$HOME"),
        ("interp-default", "image: ${TAG:-fallback}", "fallback"),
        ("interp-nested-default", "image: ${A:-${B:-deep}}", "deep"),
        ("interp-alternative", "image: x${SET:+-alt}", "x-alt"),
        ("interp-unset-is-empty", "image: x${UNSET}y", "xy"),
        ("interp-value-with-yaml", "image: x\n    labels: {l: \"${YAMLISH}\"}", "\"a: [b, {c\""),
        ("interp-value-with-dollars", "image: x\n    labels: {l: \"${DOLLARS}\"}", "${NOT}"),
        ("interp-huge-value", "image: x\n    labels: {l: \"${BIG}\"}", "BBBB"),
    ]
    for name, line, fragment in good:
        case(name, c, "interpolation that must succeed", CONFIG, 0,
             files=compose("services:\n  a:\n    " + line + "\n"), stdout=fragment,
             env={"SET": "1", "YAMLISH": "a: [b, {c", "DOLLARS": "${NOT}",
                  **({"BIG": "B" * 100_000} if name == "interp-huge-value" else {})})
    case("interp-dotenv-bad-line", c, "a .env line that is not KEY=VALUE", CONFIG, 1,
         files=compose("services:\n  a:\n    image: ${TAG}\n", **{".env": "TAG=x\nthis is not an assignment\n"}),
         stderr=".env")
    case("interp-dotenv-unclosed-quote", c, "a .env value with an unclosed quote", CONFIG, 1,
         files=compose("services:\n  a:\n    image: ${TAG}\n", **{".env": "TAG=\"x\n"}),
         stderr=".env")
    case("interp-dotenv-binary", c, "a .env file that is not UTF-8", CONFIG, 1,
         files=compose("services:\n  a:\n    image: ${TAG}\n", **{".env": b"TAG=\xff\xfe\n"}),
         stderr=".env")
    case("interp-dotenv-ok", c, "a .env file with comments, export and quotes", CONFIG, 0,
         files=compose("services:\n  a:\n    image: ${TAG}\n",
                       **{".env": "# c\nexport TAG='x y'\n\nOTHER=\"1\"\n"}),
         stdout="x y")
    case("interp-env-file-missing", c, "--env-file naming a missing file",
         ["config", "{project}", "--env-file", "{project}/nope.env"], 1,
         files=compose("services:\n  a:\n    image: x\n"), stderr="nope.env")
    case("interp-env-file-is-dir", c, "--env-file naming a directory",
         ["config", "{project}", "--env-file", "{project}"], 1,
         files=compose("services:\n  a:\n    image: x\n"), stderr="project")
    case("interp-service-env-file-missing", c, "a service env_file that does not exist", CONFIG, 1,
         files=compose("services:\n  a:\n    image: x\n    env_file: missing.env\n"),
         stderr="missing.env")
    env_file_bug = ("env_file paths are not validated as the reference's normalizeAndValidateFilePath "
                    "does (spec toolkit.md §1: absolute, leading .. and * are refused): the file is "
                    "read, and a parse error quotes its first line (/etc/shadow's root entry); "
                    "crates/parse/src/normalize.rs read_env_files()")
    for name, path, fragment in [
        ("interp-service-env-file-escape", "../../../../etc/shadow",
         "Directory traversing not allowed : ../../../../etc/shadow"),
        ("interp-service-env-file-absolute", "/etc/hostname", "Absolute filepath not allowed: /etc/hostname"),
        ("interp-service-env-file-wildcard", "'*.env'", "Wildcards not allowed : *.env"),
    ]:
        case(name, c, "an env_file path the reference refuses", CONFIG, 1,
             files=compose(f"services:\n  a:\n    image: x\n    env_file: {path}\n", **{"a.env": "A=1\n"}),
             stderr=fragment, stderr_not="root:")


def forbidden_cases():
    c = "forbidden"
    service_deny = ["blkio_config", "configs", "cpu_count", "cpu_percent", "cpu_period",
                    "credential_spec", "deploy", "develop", "external_links", "gpus",
                    "isolation", "links", "logging", "mem_swappiness", "memswap_limit",
                    "oom_kill_disable", "platform", "pull_policy", "runtime", "scale",
                    "secrets", "stdin_open", "storage_opt"]
    for key in service_deny:
        case(f"forbidden-service-{key}", c, f"service.{key} is refused", CONFIG, 1,
             files=compose(f"services:\n  s:\n    image: x\n    {key}: {{}}\n"),
             stderr=f"service.{key} is not allowed")
    build_deny = ["additional_contexts", "cache_to", "dockerfile_inline", "entitlements",
                  "isolation", "network", "no_cache", "platforms", "privileged", "pull",
                  "secrets", "ssh", "tags", "ulimits"]
    for key in build_deny:
        case(f"forbidden-build-{key}", c, f"service.build.{key} is refused", CONFIG, 1,
             files=compose(f"services:\n  s:\n    build:\n      context: .\n      {key}: {{}}\n"),
             stderr=f"service.build.{key} is not allowed")
    others = [
        ("network-external", "services: {s: {image: x}}\nnetworks: {n: {external: true}}\n", "network.external is not allowed"),
        ("network-attachable", "services: {s: {image: x}}\nnetworks: {n: {attachable: true}}\n", "network.attachable is not allowed"),
        ("volume-external", "services: {s: {image: x}}\nvolumes: {v: {external: true}}\n", "volume.external is not allowed"),
        ("volume-driver", "services: {s: {image: x}}\nvolumes: {v: {driver: nfs}}\n", "volume.driver"),
        ("network-driver", "services: {s: {image: x}}\nnetworks: {n: {driver: overlay}}\n", "overlay"),
        ("network-mode-container", "services: {s: {image: x, network_mode: \"container:abc\"}}\n", "network_mode container"),
        ("volumes-from-container", "services: {s: {image: x, volumes_from: [\"container:abc\"]}}\n", "volumes_from"),
        ("pid-container", "services: {s: {image: x, pid: \"container:abc\"}}\n", "pid container"),
        ("bind-mount-arbitrary", "services: {s: {image: x, volumes: [\"/etc:/host-etc\"]}}\n", "cannot be of type \"bind\""),
        ("bind-mount-relative", "services: {s: {image: x, volumes: [\"./data:/data\"]}}\n", "cannot be of type \"bind\""),
        ("bind-mount-long-syntax", "services: {s: {image: x, volumes: [{type: bind, source: /root, target: /r}]}}\n", "bind"),
        ("top-level-secrets", "services: {s: {image: x}}\nsecrets: {a: {file: ./a}}\n", "secrets"),
        ("top-level-configs", "services: {s: {image: x}}\nconfigs: {a: {file: ./a}}\n", "configs"),
        ("label-bad-contract", "services: {s: {image: x, labels: {io.balena.features.nope: '1'}}}\n", None),
    ]
    for name, text, fragment in others:
        if fragment is None:
            continue
        case(f"forbidden-{name}", c, "a field balena refuses", CONFIG, 1, files=compose(text),
             stderr=fragment)


def tar_cases():
    c = "tar"
    tf = ["resolve", "{project}", "--arch", "amd64", "-o", "{out}"]
    ok = app_entries()
    escapes = [
        ("tar-dotdot-file", entry("../evil", "x")),
        ("tar-dotdot-deep", entry("app/../../evil", "x")),
        ("tar-dotdot-dir", entry("../", typeflag=b"5")),
        ("tar-absolute-file", entry("/etc/evil", "x")),
        ("tar-absolute-root", entry("/", typeflag=b"5")),
        ("tar-dotdot-prefix-field", header("evil", size=1, prefix=b"..") + pad(b"x")),
        ("tar-absolute-prefix-field", header("evil", size=1, prefix=b"/etc") + pad(b"x")),
        ("tar-pax-path-dotdot", pax([("path", "../../evil")]) + entry("innocent", "x")),
        ("tar-pax-path-absolute", pax([("path", "/tmp/evil")]) + entry("innocent", "x")),
        ("tar-gnu-longname-dotdot", gnu_long(b"L", "../" * 60 + "evil") + entry("short", "x")),
        ("tar-hardlink-dotdot", entry("app/link", typeflag=b"1", linkname="../../etc/passwd")),
        ("tar-hardlink-absolute", entry("app/link", typeflag=b"1", linkname="/etc/passwd")),
    ]
    for name, evil in escapes:
        case(name, c, "an entry leaving the project is refused", tf, 1,
             tar=tar_of(ok, evil),
             stderr="points outside the project" if "hardlink" in name else "path escapes the project root")
    case("tar-hardlink-missing", c, "a hard link to an entry the archive lacks", tf, 1,
         tar=tar_of(ok, entry("app/link", typeflag=b"1", linkname="app/nothere")), stderr="app/link")
    case("tar-hardlink-out-of-context", c,
         "a hard link from a context to a file outside it is refused when the context is cut",
         tf, 1, tar=tar_of(ok, entry("secret", "s"), entry("app/link", typeflag=b"1", linkname="secret")),
         stderr="app/link")
    case("tar-hardlink-in-context-ok", c, "a hard link inside the context is fine", tf, 0,
         tar=tar_of(ok, entry("app/a", "a"), entry("app/b", typeflag=b"1", linkname="app/a")),
         stdout="app.tar")
    case("tar-symlink-escape-dotdot", c, "a symlink leaving the context is refused", tf, 1,
         tar=tar_of(ok, entry("app/link", typeflag=b"2", linkname="../../../etc")), stderr="points outside the build context")
    case("tar-symlink-to-sibling", c, "a symlink to a file of the project outside the context", tf, 1,
         tar=tar_of(ok, entry("secret", "s"), entry("app/link", typeflag=b"2", linkname="../secret")),
         stderr="app/link")
    case("tar-symlink-absolute", c,
         "an absolute symlink is refused when its context is cut (the context crate's rule)", tf, 1,
         tar=tar_of(ok, entry("app/link", typeflag=b"2", linkname="/etc/passwd")),
         stderr="points outside the build context")
    case("tar-symlink-relative-ok", c, "a symlink inside the context is kept", tf, 0,
         tar=tar_of(ok, entry("app/a", "a"), entry("app/link", typeflag=b"2", linkname="a")),
         stdout="app.tar")
    case("tar-entry-below-symlink", c, "a file below a symlink (a write through it)", tf, 1,
         tar=tar_of(ok, entry("app/link", typeflag=b"2", linkname="/etc"), entry("app/link/passwd", "x")),
         stderr="app/link")
    case("tar-entry-below-file", c, "a file below a regular file", tf, 1,
         tar=tar_of(ok, entry("app/f", "x"), entry("app/f/g", "y")), stderr="app/f")
    case("tar-compose-symlink", c, "the compose file is a symlink out of the project", tf, 1,
         tar=tar_of(entry("docker-compose.yml", typeflag=b"2", linkname="/etc/passwd"),
                    entry("app/Dockerfile", APP_DOCKERFILE)), stderr="docker-compose.yml")
    case("tar-dockerfile-symlink", c, "the Dockerfile is a symlink out of the project", tf, 1,
         tar=tar_of(entry("docker-compose.yml", APP_COMPOSE),
                    entry("app/Dockerfile", typeflag=b"2", linkname="../../../etc/passwd")),
         stderr="Dockerfile")
    case("tar-context-dotdot", c, "a build context of ../ in a tar project", tf, 1,
         tar=tar_of(entry("docker-compose.yml", "services:\n  app:\n    build: ../\n")),
         stderr="app")
    case("tar-context-absolute", c, "a build context of /etc in a tar project", tf, 1,
         tar=tar_of(entry("docker-compose.yml", "services:\n  app:\n    build: /etc\n")),
         stderr="app")
    case("tar-dockerfile-dotdot", c, "a dockerfile of ../../etc/passwd", tf, 1,
         tar=tar_of(entry("docker-compose.yml",
                          "services:\n  app:\n    build: {context: app, dockerfile: ../../../etc/passwd}\n"),
                    entry("app/Dockerfile", APP_DOCKERFILE)),
         stderr="passwd")
    # Truncation and corruption.
    full = tar_of(ok)
    case("tar-empty-file", c, "a 0-byte file is an empty archive: no compose file", tf, 1,
         tar=b"", stderr="has no docker-compose.yml")
    for name, data, fragment in [
        ("tar-half-header", full[:256], None),
        ("tar-header-only", full[:512], "declares 34 bytes of data but the archive ends at byte 512"),
        ("tar-truncated-data", entry("docker-compose.yml", APP_COMPOSE)[:530], "declares 34 bytes of data but the archive ends at byte 530"),
        ("tar-truncated-second-header", full[:1024 + 100], None),
        ("tar-garbage", bytes(range(256)) * 8, None),
        ("tar-bad-checksum", header("docker-compose.yml", size=3, checksum=False) + pad(b"abc") + END, None),
        ("tar-bad-octal-size", header("x", size_field=b"zzzzzzzzzzz\0") + END, None),
        ("tar-declared-size-past-end", header("big", size=1 << 30) + b"x" * 512 + END, "big"),
        ("tar-enormous-octal-size", header("big", size_field=b"77777777777\0") + b"x" * 512, "big"),
        ("tar-enormous-base256-size", header("big", size_field=b"\x80" + b"\xff" * 11) + b"x" * 512, None),
        ("tar-pax-huge-size", ok + pax([("size", "99999999999999999999")]) + entry("app/big", "x") + END, None),
        ("tar-pax-bad-record", ok + header("PaxHeader", size=10, typeflag=b"x") + pad(b"garbage!!\n") + entry("app/a", "x") + END, None),
        ("tar-pax-length-past-end", ok + header("PaxHeader", size=20, typeflag=b"x") + pad(b"999 path=x\n") + entry("app/a", "x") + END, None),
        ("tar-pax-size-larger-than-data", ok + pax([("size", "4096")]) + entry("app/a", "x") + END, "declares 4096 bytes of data"),
        ("tar-gnu-longname-truncated", gnu_long(b"L", "a" * 300)[:700], None),
        ("tar-gnu-longname-huge", header("././@LongLink", size=1 << 40, typeflag=b"L", magic=b"ustar  \0") + b"a" * 512, None),
        ("tar-pax-huge-header", header("PaxHeader", size=1 << 40, typeflag=b"x") + b"a" * 512, None),
        ("tar-gzip-garbage", b"\x1f\x8b\x08\x00" + b"\x00" * 600, "reading the gzip-compressed project tar"),
    ]:
        case(name, c, "a truncated or corrupt archive is an error", tf, 1, tar=data,
             stderr=fragment or "malformed tar archive",
             )
    case("tar-only-zero-blocks", c, "an archive of nothing but end blocks has no compose file", tf, 1,
         tar=END, stderr="docker-compose")
    case("tar-stdin-garbage", c, "garbage on standard input",
         ["resolve", "-", "--arch", "amd64", "-o", "{out}"], 1, tar=bytes(range(256)) * 4,
         stdin="project.tar", stderr="malformed tar archive")
    case("tar-stdin-truncated", c, "a truncated tar on standard input",
         ["resolve", "-", "--arch", "amd64", "-o", "{out}"], 1, tar=full[:530],
         stdin="project.tar", stderr="declares 34 bytes of data but the archive ends")
    case("tar-stdin-ok", c, "a tar on standard input works",
         ["resolve", "-", "--arch", "amd64", "-o", "{out}"], 0, tar=full,
         stdin="project.tar", stdout="app")
    # Names that are long, odd or repeated, but legal.
    long_dir = "app/" + "/".join(["d" * 50] * 6)
    case("tar-pax-long-name-ok", c, "a pax long name inside the context is kept", tf, 0,
         tar=tar_of(ok, pax([("path", long_dir + "/file")]) + entry("placeholder", "x")),
         stdout="app.tar")
    case("tar-gnu-long-name-ok", c, "a GNU long name inside the context is kept", tf, 0,
         tar=tar_of(ok, gnu_long(b"L", long_dir + "/file") + entry("placeholder", "x")),
         stdout="app.tar")
    case("tar-gnu-long-link-escape", c, "a GNU long link target leaving the context", tf, 1,
         tar=tar_of(ok, gnu_long(b"K", "../" * 60 + "etc") + entry("app/link", typeflag=b"2", linkname="short")),
         stderr="app/link")
    case("tar-pax-linkpath-escape", c, "a pax linkpath leaving the context", tf, 1,
         tar=tar_of(ok, pax([("linkpath", "../../../../etc")]) + entry("app/link", typeflag=b"2", linkname="short")),
         stderr="app/link")
    case("tar-duplicate-entry-last-wins", c, "a repeated path keeps its last occurrence", tf, 0,
         tar=tar_of(ok, entry("app/Dockerfile", "FROM local/amd64-busybox\nRUN echo second\n")),
         stdout="app.tar")
    case("tar-dot-slash-names", c, "./-prefixed names (GNU tar's default) work", tf, 0,
         tar=tar_of(entry("./", typeflag=b"5", mode=0o755), entry("./docker-compose.yml", APP_COMPOSE),
                    entry("./app/Dockerfile", APP_DOCKERFILE)), stdout="app.tar")
    case("tar-device-and-fifo-skipped", c, "devices and fifos are skipped with a warning", tf, 0,
         tar=tar_of(ok, entry("app/dev", typeflag=b"3"), entry("app/fifo", typeflag=b"6")),
         stdout="app.tar")
    case("tar-unknown-typeflag", c, "an unknown entry type", tf, 0,
         tar=tar_of(ok, entry("app/odd", "x", typeflag=b"Z")), stdout="app.tar")
    case("tar-nul-in-name", c, "a NUL inside a name field ends the name", tf, 0,
         tar=tar_of(ok, header(b"app/a\0../../evil", size=1) + pad(b"x")), stdout="app.tar")
    case("tar-non-utf8-name", c, "a name that is not UTF-8", tf, 1,
         tar=tar_of(ok, entry(b"app/\xff\xfe", "x")), stderr="path is not valid UTF-8")
    case("tar-escape-sequence-in-name", c, "an entry name with terminal escapes is not echoed raw", tf, 1,
         tar=tar_of(ok, entry(b"\x1b]2;pwned\x07/../../x", "x")), stderr="path escapes the project root",
         stderr_not="\x1b]2;")
    case("tar-sparse-entry", c, "a GNU sparse entry with an empty sparse map", tf, 1,
         tar=tar_of(ok, header("app/sparse", size=0, typeflag=b"S", magic=b"ustar  \0")),
         stderr="malformed tar archive")
    # Names over the limit (4096 bytes, Linux's PATH_MAX): refused, quoted cut.
    huge = "app/" + "n" * 5000
    for name, data, fragment in [
        ("tar-pax-path-over-limit", pax([("path", huge)]) + entry("placeholder", "x"),
         'tar entry "app/nnn'),
        ("tar-gnu-longname-over-limit", gnu_long(b"L", huge) + entry("placeholder", "x"),
         'GNU long name is 5004 bytes long, over the limit of 4096'),
        ("tar-pax-linkpath-over-limit",
         pax([("linkpath", huge)]) + entry("app/link", typeflag=b"2", linkname="x"),
         'tar entry "app/link": pax record "linkpath" is 5004 bytes long, over the limit of 4096'),
        ("tar-gnu-longlink-over-limit",
         gnu_long(b"K", huge) + entry("app/link", typeflag=b"2", linkname="x"),
         'tar entry "app/link": GNU long link name is 5004 bytes long'),
    ]:
        case(name, c, "a path or link name over 4096 bytes is refused, the message cut short",
             tf, 1, tar=tar_of(ok, data), stderr=fragment, stderr_not="n" * 200)
    # Sparse files (GNU tar --sparse): expanded, or refused when the map does not add up.
    chunks = [(0, b"A" * 512), (8192, b"B" * 100)]
    data = b"".join(d for _, d in chunks)
    map10 = "%d\n" % len(chunks) + "".join("%d\n%d\n" % (o, len(d)) for o, d in chunks)
    sparse_ok = [
        ("tar-sparse-gnu-ok", gnu_sparse("app/sparse", 10000, chunks)),
        ("tar-sparse-pax-0.0-ok",
         pax([("GNU.sparse.size", "10000"), ("GNU.sparse.numblocks", "2"),
              ("GNU.sparse.offset", "0"), ("GNU.sparse.numbytes", "512"),
              ("GNU.sparse.offset", "8192"), ("GNU.sparse.numbytes", "100")])
         + entry("app/sparse", data)),
        ("tar-sparse-pax-0.1-ok",
         pax([("GNU.sparse.size", "10000"), ("GNU.sparse.numblocks", "2"),
              ("GNU.sparse.name", "app/sparse"), ("GNU.sparse.map", "0,512,8192,100")])
         + entry("app/GNUSparseFile.1/sparse", data)),
        ("tar-sparse-pax-1.0-ok",
         pax([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
              ("GNU.sparse.name", "app/sparse"), ("GNU.sparse.realsize", "10000")])
         + entry("app/GNUSparseFile.1/sparse", pad(map10.encode()) + data)),
    ]
    for name, member in sparse_ok:
        case(name, c, "a sparse file is expanded into the context", tf, 0,
             tar=tar_of(ok, member), stdout="app.tar")
    case("tar-sparse-pax-unknown-version", c, "a sparse format other than 0.0, 0.1, 1.0 is refused",
         tf, 1, tar=tar_of(ok, pax([("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0"),
                                     ("GNU.sparse.name", "app/sparse")])
                           + entry("app/GNUSparseFile.1/sparse", data)),
         stderr='entry "app/sparse"): GNU sparse format 2.0 is not supported')
    case("tar-sparse-map-past-data", c, "a sparse map describing more data than is stored",
         tf, 1, tar=tar_of(ok, gnu_sparse("app/sparse", 10000, chunks, stored=512)),
         stderr="sparse map describes 612 bytes of data but the entry stores 512")
    # gzip-compressed project tars are decompressed while spooled.
    case("tar-gzip-ok", c, "a gzip-compressed project tar (.tar.gz)", tf, 0,
         tar=gzip.compress(full, mtime=0), stdout="app.tar")
    case("tar-gzip-stdin-ok", c, "a gzip-compressed project tar on standard input",
         ["resolve", "-", "--arch", "amd64", "-o", "{out}"], 0, tar=gzip.compress(full, mtime=0),
         stdin="project.tar", stdout="app")
    case("tar-no-compose-no-dockerfile", c, "a tar with neither compose file nor Dockerfile", tf, 1,
         tar=tar_of(entry("README", "x")), stderr="docker-compose")
    case("tar-missing-dockerfile", c, "a service context without a Dockerfile", tf, 1,
         tar=tar_of(entry("docker-compose.yml", APP_COMPOSE), entry("app/README", "x")),
         stderr="Dockerfile")
    case("tar-missing-context", c, "a service context missing from the tar", tf, 1,
         tar=tar_of(entry("docker-compose.yml", APP_COMPOSE)), stderr="app")
    case("tar-huge-mtime", c, "an mtime far in the future", tf, 0,
         tar=tar_of(ok, header("app/future", size=1, mtime=0o77777777777) + pad(b"x")), stdout="app.tar")
    case("tar-ok-via-tarfile", c, "a PAX tar from Python's tarfile", tf, 0,
         tar=tarfile_of([(tinfo("docker-compose.yml"), APP_COMPOSE), (tinfo("app/Dockerfile"), APP_DOCKERFILE)]),
         stdout="app.tar")


def directory_cases():
    c = "directory"
    case("dir-context-dotdot", c, "a build context outside the project directory", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: ../\n"}, stderr="app")
    case("dir-context-absolute", c, "an absolute build context", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: /etc\n"}, stderr="app")
    case("dir-context-missing", c, "a build context that does not exist", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: ./nope\n"}, stderr="nope")
    case("dir-context-is-file", c, "a build context that is a file", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: ./file\n", "file": "x"},
         stderr="file")
    case("dir-dockerfile-dotdot", c, "a dockerfile outside the context", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: {context: app, dockerfile: ../../../../etc/passwd}\n",
                "app/Dockerfile": APP_DOCKERFILE}, stderr="passwd")
    case("dir-dockerfile-absolute", c, "an absolute dockerfile path", RESOLVE, 1,
         files={"docker-compose.yml": "services:\n  app:\n    build: {context: app, dockerfile: /etc/passwd}\n",
                "app/Dockerfile": APP_DOCKERFILE}, stderr="passwd")
    case("dir-dockerfile-missing", c, "a context without a Dockerfile", RESOLVE, 1,
         files={"docker-compose.yml": APP_COMPOSE, "app/README": "x"}, stderr="Dockerfile")
    case("dir-symlink-context-escape", c, "a symlink in the context pointing out of it", RESOLVE, 1,
         files=app(), setup={"symlinks": [["app/etc", "../../../../../etc"]]},
         stderr="points outside the build context")
    case("dir-symlink-context-dir", c, "the build context itself is a symlink out of the project",
         RESOLVE, 1, files={"docker-compose.yml": APP_COMPOSE},
         setup={"symlinks": [["app", "/etc"]]}, stderr="app")
    case("dir-symlink-dockerfile", c, "the Dockerfile is a symlink to a host file", RESOLVE, 1,
         files={"docker-compose.yml": APP_COMPOSE, "app/keep": "x"},
         setup={"symlinks": [["app/Dockerfile", "/etc/passwd"]]}, stderr="Dockerfile")
    case("dir-symlink-compose", c, "the compose file is a symlink to a host file", RESOLVE, 1,
         files={"app/Dockerfile": APP_DOCKERFILE},
         setup={"symlinks": [["docker-compose.yml", "/etc/hostname"]]}, stderr="docker-compose")
    case("dir-symlink-absolute", c, "an absolute symlink in the context is refused (the context crate's rule)",
         RESOLVE, 1, files=app(), setup={"symlinks": [["app/passwd", "/etc/passwd"]]},
         stderr="points outside the build context")
    case("dir-dangling-symlink-kept", c, "a dangling relative symlink inside the context", RESOLVE, 0,
         files=app(), setup={"symlinks": [["app/dangling", "nothere"]]}, stdout="app.tar")
    case("dir-symlink-loop", c,
         "a symlink loop inside the context is harmless (following it fails with ELOOP, never "
         "outside the context): sent as the links it is, as docker build does",
         RESOLVE, 0,
         files=app(), setup={"symlinks": [["app/loop1", "loop2"], ["app/loop2", "loop1"]]},
         stdout="app.tar")
    case("dir-not-a-project", c, "a project path that does not exist",
         ["resolve", "{tmp}/nope", "--arch", "amd64", "-o", "{out}"], 1, files={},
         stderr="nope")
    case("dir-empty", c, "an empty directory", RESOLVE, 1, files={}, stderr="docker-compose")
    case("dir-dockerfile-only", c, "a Dockerfile but no compose file gives the default service",
         RESOLVE, 0, files={"Dockerfile": APP_DOCKERFILE}, stdout="main")
    case("dir-output-is-file", c, "the output directory is an existing file",
         ["resolve", "{project}", "--arch", "amd64", "-o", "{project}/docker-compose.yml"], 1,
         files=app(), stderr="docker-compose.yml")
    case("dir-dockerignore-binary", c, "a .dockerignore that is binary garbage: a bad pattern", RESOLVE, 1,
         files=app(**{"app/.dockerignore": bytes(range(256))}), stderr="app/.dockerignore line 2")
    case("dir-dockerignore-escape-sequence", c, "a bad .dockerignore pattern with terminal escapes is not echoed raw",
         RESOLVE, 1, files=app(**{".dockerignore": b"\x1b]2;pwned\x07[\n"}), stderr=".dockerignore line 1",
         stderr_not="\x1b]2;")
    case("dir-dockerignore-bad-pattern", c, "a .dockerignore with an invalid pattern", RESOLVE, 1,
         files=app(**{".dockerignore": "[z-a]\n"}), stderr=".dockerignore")
    case("dir-dockerignore-unclosed-class", c, "a .dockerignore with an unclosed [", RESOLVE, 1,
         files=app(**{".dockerignore": "a[\n"}), stderr=".dockerignore")
    case("dir-dockerignore-ignores-dockerfile", c, "a .dockerignore excluding the Dockerfile: it is still sent",
         RESOLVE, 0, files=app(**{".dockerignore": "*\n"}), stdout="app.tar")
    case("dir-compose-file-missing", c, "-f naming a missing file",
         ["config", "{project}", "-f", "{project}/nope.yml"], 1, files={}, stderr="nope.yml")
    case("dir-compose-file-is-dir", c, "-f naming a directory",
         ["config", "-f", "{project}"], 1, files={}, stderr="project")
    case("dir-two-compose-files", c, "both docker-compose.yml and compose.yaml", CONFIG, 1,
         files={"docker-compose.yml": "services: {a: {image: x}}\n", "compose.yaml": "services: {b: {image: y}}\n"},
         stderr="compose")
    case("dir-service-named-dotdot-output", c, "a service named ../x must not write outside --output-dir",
         RESOLVE, 1, files={"docker-compose.yml": "services:\n  ../escape:\n    build: ./app\n",
                            "app/Dockerfile": APP_DOCKERFILE}, stderr="../escape")


def dockerfile_cases():
    c = "dockerfile"

    def df(name, description, dockerfile, exit, fragment, template=True, args=RESOLVE, **kw):
        files = {"docker-compose.yml": APP_COMPOSE,
                 "app/Dockerfile.template" if template else "app/Dockerfile": dockerfile}
        if exit == 0:
            kw.setdefault("stdout", fragment)
        else:
            kw.setdefault("stderr", fragment)
        case(name, c, description, args, exit, files=files, **kw)

    df("df-undefined-variable", "%%UNDEFINED%% in a template", "FROM x\nRUN echo %%NOPE%%\n", 1, "NOPE is not defined (template line 2)")
    df("df-undefined-in-from", "an undefined variable in FROM", "FROM %%WHAT%%\n", 1, "WHAT is not defined (template line 1)")
    df("df-unterminated-marker", "an unterminated %% is left alone", "FROM local/%%BALENA_ARCH-busybox\n", 0, "app.tar")
    df("df-lowercase-marker", "%%lower%% is left alone", "FROM local/amd64-busybox\nRUN echo %%lower%%\n", 0, "app.tar")
    df("df-comment-marker", "a column-0 # line keeps its marker", "# %%NOPE%%\nFROM local/amd64-busybox\n", 0, "app.tar")
    df("df-crlf-template", "a CRLF template", "FROM local/%%BALENA_ARCH%%-busybox\r\nRUN true\r\n", 0, "app.tar")
    df("df-continuation-at-eof", "a line continuation at the end of the file", "FROM local/amd64-busybox\nRUN echo \\", 0, "app.tar")
    df("df-many-continuations", "10k continuation lines", "", 0, "app.tar",
       setup=gen("app/Dockerfile.template", "FROM local/amd64-busybox\nRUN echo", " \\\n a", 10000, "\n"))
    df("df-backtick-escape", "a backtick escape directive", "# escape=`\nFROM local/amd64-busybox\nRUN echo a `\n b\n", 0, "app.tar")
    df("df-utf16", "a UTF-16 Dockerfile.template", "FROM x\n".encode("utf-16"), 1, "Dockerfile.template")
    df("df-invalid-utf8", "a Dockerfile.template that is not UTF-8", b"FROM x\nRUN echo \xff\xfe\n", 1, "Dockerfile.template")
    df("df-nul-bytes", "NUL bytes in a template", b"FROM local/amd64-busybox\nRUN echo \x00\x00\n", 0, "app.tar")
    df("df-utf8-bom", "a UTF-8 BOM template", b"\xef\xbb\xbfFROM local/%%BALENA_ARCH%%-busybox\n", 0, "app.tar")
    df("df-empty-template", "an empty template", "", 0, "app.tar")
    df("df-plain-invalid-utf8", "a plain Dockerfile that is not UTF-8 is refused, naming the offset", b"FROM local/amd64-busybox\nRUN echo \xff\n", 1, "not UTF-8 text (invalid byte at offset 34)", template=False)
    df("df-heredoc", "a heredoc", "FROM local/amd64-busybox\nRUN <<EOF\necho %%BALENA_ARCH%%\nEOF\n", 0, "app.tar")
    df("df-huge-line", "a 1 MB line", "", 0, "app.tar",
       setup=gen("app/Dockerfile.template", "FROM local/amd64-busybox\nRUN echo ", "a", 1_000_000, "\n"))
    df("df-marker-storm", "100k markers", "", 0, "app.tar",
       setup=gen("app/Dockerfile.template", "FROM local/amd64-busybox\nRUN echo ", "%%BALENA_ARCH%%", 100_000, "\n"))
    df("df-percent-storm", "a line of 100k %", "", 0, "app.tar",
       setup=gen("app/Dockerfile.template", "FROM local/amd64-busybox\nRUN echo ", "%", 100_000, "\n"))
    em = ["resolve", "{project}", "--arch", "aarch64", "--emulated", "-o", "{out}"]
    df("df-emulated-bad-escape", "an invalid escape directive under --emulated", "# escape=x\nFROM local/aarch64-busybox\nRUN true\n", 1, "escape", args=em)
    df("df-emulated-continuation-eof", "a continuation at EOF under --emulated", "FROM local/aarch64-busybox\nRUN echo \\", 0, "app.tar", args=em)
    df("df-emulated-crlf", "CRLF under --emulated", "FROM local/aarch64-busybox\r\nRUN true\r\n", 0, "app.tar", args=em)
    df("df-emulated-json-run", "exec-form RUN with bad JSON under --emulated", "FROM local/aarch64-busybox\nRUN [\"/bin/sh\", \n", 0, "app.tar", args=em)
    df("df-emulated-no-from", "RUN before FROM under --emulated", "RUN true\nFROM local/aarch64-busybox\n", 0, "app.tar", args=em)
    df("df-emulated-heredoc", "a heredoc under --emulated", "FROM local/aarch64-busybox\nRUN <<EOF\ntrue\nEOF\n", 0, "app.tar", args=em)
    df("df-emulated-huge-continuation", "10k continuations under --emulated", "", 0, "app.tar", args=em,
       setup=gen("app/Dockerfile.template", "FROM local/aarch64-busybox\nRUN echo", " \\\n a", 10000, "\n"))
    df("df-emulated-invalid-utf8", "a non-UTF-8 plain Dockerfile under --emulated", b"FROM local/aarch64-busybox\nRUN echo \xff\n", 1, "Dockerfile", template=False, args=em)


def target_cases():
    c = "target"
    for arch in ["foo", "", "amd64 ", "aarch64\n", "../amd64"]:
        safe = "".join(ch if ch.isalnum() else "_" for ch in arch) or "empty"
        case(f"target-unknown-arch-{safe}", c, f"--arch {arch!r} is not an architecture",
             ["resolve", "{project}", "--arch", arch, "-o", "{out}"], 2, files=app(),
             stderr="valid architectures are")
    # Names that mean one architecture are aliases of its balena slug (docker's, uname's,
    # Debian's); an ambiguous one is an error suggesting the candidates.
    for arch in ["ARM64", "x86_64", "armhf", "linux/arm64"]:
        safe = "".join(ch if ch.isalnum() else "_" for ch in arch)
        case(f"target-arch-alias-{safe}", c, f"--arch {arch!r} is an alias of a balena architecture",
             ["resolve", "{project}", "--arch", arch, "-o", "{out}"], 0, files=app(),
             stdout="app.tar")
    case("target-arch-ambiguous-arm", c, "--arch arm could be armv7hf or rpi",
         ["resolve", "{project}", "--arch", "arm", "-o", "{out}"], 2, files=app(),
         stderr="armv7hf or rpi")
    case("target-foreign-arch-no-emulated", c, "a foreign arch without --emulated writes the plain context",
         ["resolve", "{project}", "--arch", "aarch64", "-o", "{out}"], 0, files=app(),
         stdout="app.tar")
    case("target-qemu-missing", c, "--qemu naming a missing file",
         ["resolve", "{project}", "--arch", "aarch64", "--emulated", "--qemu", "{tmp}/no-qemu", "-o", "{out}"],
         1, files=app(), stderr="no-qemu")
    case("target-qemu-without-emulated", c, "--qemu without --emulated",
         ["resolve", "{project}", "--arch", "aarch64", "--qemu", "/bin/true", "-o", "{out}"],
         2, files=app(), stderr="--emulated")
    for name, dt in [("dotdot", "../../x"), ("slash", "a/b"), ("empty", ""),
                     ("newline", "rpi\nFROM evil")]:
        case(f"target-device-type-{name}", c, f"a device type {dt!r} that cannot be a slug",
             ["resolve", "{project}", "--arch", "amd64", "--device-type", dt, "-o", "{out}"], 2,
             files=app(), stderr="device type")
    case("target-device-type-unknown", c, "an unknown device type names the closest known ones",
         ["resolve", "{project}", "--arch", "amd64", "--device-type", "intel-nucc", "-o", "{out}"], 2,
         files=app(), stderr="closest known device types are intel-nuc")
    case("target-device-type-arch-mismatch", c, "a device type of another arch than --arch",
         ["resolve", "{project}", "--arch", "amd64", "--device-type", "raspberrypi4-64", "-o", "{out}"], 1,
         files=app(), stderr="does not match the device type raspberrypi4-64")
    case("target-device-type-dockerfile", c, "Dockerfile.<device type> wins",
         ["resolve", "{project}", "--arch", "amd64", "--device-type", "intel-nuc", "-o", "{out}"], 0,
         files=app(**{"app/Dockerfile.intel-nuc": APP_DOCKERFILE}), stdout="Architecture-specific Dockerfile")
    case("target-unknown-arch-dockerfile-ignored", c, "a Dockerfile.<unknown arch> is ignored",
         RESOLVE, 0, files=app(**{"app/Dockerfile.sparc": "FROM nope\n"}), stdout="Standard Dockerfile")


def balena_yml_cases():
    c = "balena-yml"

    def by(name, description, text, exit, fragment, path=".balena/balena.yml"):
        kw = {"stdout": fragment} if exit == 0 else {"stderr": fragment}
        case(name, c, description, RESOLVE, exit, files=app(**{path: text}), **kw)

    by("balena-yml-invalid-yaml", "balena.yml that is not YAML", "build-variables: [\n", 1, "balena.yml")
    by("balena-yml-scalar", "balena.yml that is a scalar", "hello\n", 1, "balena.yml")
    by("balena-yml-list", "balena.yml that is a list", "- a\n", 1, "balena.yml")
    by("balena-yml-build-variables-list", "build-variables as a list", "build-variables: [A=1]\n", 1, "build-variables")
    by("balena-yml-global-not-list", "build-variables.global as a map", "build-variables: {global: {A: 1}}\n", 1, "global")
    by("balena-yml-global-no-equals", "a build variable without =", "build-variables: {global: [A]}\n", 1, "A")
    by("balena-yml-services-unknown", "build variables for an unknown service",
       "build-variables: {services: {nope: [A=1]}}\n", 0, "app.tar")
    by("balena-yml-services-not-map", "build-variables.services as a list",
       "build-variables: {services: [a]}\n", 1, "services")
    by("balena-yml-billion-laughs", "an alias bomb in balena.yml",
       "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
       "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", 1, "balena.yml")
    by("balena-yml-deep", "deep nesting in balena.yml", "x: " + "[" * 5000 + "\n", 1, "balena.yml")
    by("balena-yml-invalid-utf8", "balena.yml that is not UTF-8", b"build-variables: {global: [A=\xff]}\n", 1, "balena.yml")
    by("balena-yml-duplicate-key", "a duplicate key in balena.yml", "build-variables: {}\nbuild-variables: {}\n", 1, "balena.yml")
    by("balena-yml-build-secrets-wrong-type", "build-secrets as a string", "build-secrets: yes\n", 1, "build-secrets")
    by("balena-yml-unknown-keys-ok", "unknown top-level keys are ignored", "name: x\ntype: sw.application\n", 0, "app.tar")
    by("balena-yml-empty", "an empty balena.yml is refused, naming it", "", 1, "balena.yml: expected a mapping")
    by("balena-yml-resin-dir", "the legacy .resin/ directory is read too", "build-variables: [\n", 1, "balena.yml",
       path=".resin/balena.yml")
    case("balena-yml-both-names", c, "balena.yml and balena.yaml both present", RESOLVE, 1,
         files=app(**{".balena/balena.yml": "{}\n", ".balena/balena.yaml": "{}\n"}), stderr="balena.y")
    case("balena-yml-is-directory", c, "a directory named .balena/balena.yml is not a config file", RESOLVE, 0,
         files=app(**{".balena/balena.yml/x": "x"}), stdout="app.tar")


def registry_secrets_cases():
    c = "registry-secrets"

    def rs(name, description, text, exit, fragment, file=".balena/registry-secrets.yml"):
        kw = {"stdout": fragment} if exit == 0 else {"stderr": fragment}
        case(name, c, description, RESOLVE, exit, files=app(**{file: text}), **kw)

    rs("regsec-invalid-yaml", "registry-secrets.yml that is not YAML", "a: [\n", 1, "registry-secrets.yml")
    rs("regsec-list", "registry-secrets as a list", "- a\n", 1, "registry-secrets.yml")
    rs("regsec-entry-string", "an entry that is a string", "registry.io: hunter2\n", 1, "registry.io")
    rs("regsec-missing-password", "username and password are optional (the reference's schema)", "registry.io: {username: u}\n", 0, "app.tar")
    rs("regsec-password-number", "a numeric password", "registry.io: {username: u, password: 5}\n", 1, "password")
    rs("regsec-extra-field", "an unknown field", "registry.io: {username: u, password: p, token: t}\n", 1, "should NOT have additional properties")
    rs("regsec-json-invalid", "registry-secrets.json that is not JSON", "{\"a\": ", 1, "registry-secrets.json",
       file=".balena/registry-secrets.json")
    rs("regsec-json-array", "registry-secrets.json that is an array", "[]", 1, "registry-secrets.json",
       file=".balena/registry-secrets.json")
    rs("regsec-shared-alias", "20 registries sharing one credential through an alias",
       "x: &a {username: u, password: p}\n" + "".join(f"r{i}.io: *a\n" for i in range(20)), 0, "app.tar")
    rs("regsec-alias-bomb", "an alias bomb in registry-secrets",
       "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
       1, "registry-secrets.yml")
    rs("regsec-invalid-utf8", "registry-secrets that is not UTF-8", b"r.io: {username: \xff, password: p}\n", 1,
       "registry-secrets.yml")
    rs("regsec-ok", "a valid registry-secrets file", "r.io: {username: u, password: p}\n", 0, "app.tar")
    # The -R flag of build reads the file before any build starts.
    build = ["build", "{project}", "--arch", "amd64", "-t", "corpus", "-R", "{project}/secrets.yml"]
    for name, text, fragment in [
        ("regsec-flag-invalid-yaml", "a: [\n", "secrets.yml"),
        ("regsec-flag-wrong-shape", "- a\n", "secrets.yml"),
        ("regsec-flag-password-not-string", "127.0.0.1:5001: {username: balena, password: [1]}\n", "password should be string"),
    ]:
        case(name, c, "build -R with a bad registry-secrets file fails before building", build, 1,
             files=app(**{"secrets.yml": text}), stderr=fragment, needs_docker=True)
    case("regsec-flag-missing-file", c, "build -R naming a missing file",
         ["build", "{project}", "--arch", "amd64", "-R", "{tmp}/none.yml"], 1, files=app(),
         stderr="none.yml", needs_docker=True)
    case("regsec-flag-secret-not-echoed", c,
         "a malformed registry-secrets file: the error must not print the password",
         build, 1, files=app(**{"secrets.yml": "127.0.0.1:5001: {username: balena, password: s3cr3t-corpus-value, extra: [}\n"}),
         stderr="secrets.yml", stderr_not="s3cr3t-corpus-value", needs_docker=True)


def cli_cases():
    c = "cli"
    for name, args, exit, fragment in [
        ("cli-no-args", [], 2, "Usage"),
        ("cli-unknown-command", ["frobnicate"], 2, "frobnicate"),
        ("cli-resolve-no-arch", ["resolve", "{project}", "-o", "{out}"], 2, "--arch"),
        ("cli-resolve-no-output", ["resolve", "{project}", "--arch", "amd64"], 2, "--output-dir"),
        ("cli-bad-build-arg", ["resolve", "{project}", "--arch", "amd64", "--build-arg", "=x", "-o", "{out}"], 2, "KEY=VALUE"),
        ("cli-build-jobs-zero", ["build", "{project}", "--jobs", "0"], 2, "jobs"),
        ("cli-config-bad-format", ["config", "{project}", "--format", "xml"], 2, "xml"),
        ("cli-build-bad-docker-host", ["build", "{project}", "--arch", "amd64", "--docker-host", "ftp://nowhere"], 1, "ftp://nowhere"),
        ("cli-build-missing-socket", ["build", "{project}", "--arch", "amd64", "--docker-host", "unix://{tmp}/no.sock"], 1, "no.sock"),
    ]:
        case(name, c, "command-line misuse", args, exit, files=app(), stderr=fragment)
    config_cases()


def config_cases():
    """Profiles, COMPOSE_FILE, string commands and `$$`, as docker compose reads them."""
    c = "cli"
    json_config = ["config", "{project}", "--format", "json"]
    profiled = compose("services:\n  a:\n    image: x\n  b:\n    image: y\n    profiles: [debug]\n")
    case("config-profile-inactive-left-out", c, "a service of an inactive profile is left out",
         json_config, 0, files=profiled, stdout='{"services":{"a":{"image":"x"}},"networks"')
    case("config-profile-enabled-by-flag", c, "--profile enables a profile's services",
         json_config + ["--profile", "debug"], 0, files=profiled, stdout='"b":{"image":"y"')
    case("config-profile-enabled-by-env", c, "COMPOSE_PROFILES enables a profile's services",
         json_config, 0, files=profiled, env={"COMPOSE_PROFILES": "other,debug"},
         stdout='"b":{"image":"y"')
    case("config-profile-star", c, "--profile '*' enables every profile", json_config + ["--profile", "*"],
         0, files=profiled, stdout='"b":{"image":"y"')
    case("config-profile-bad-name", c, "a profile name outside the compose-spec pattern", CONFIG, 1,
         files=compose("services:\n  a:\n    image: x\n    profiles: [\"-x\"]\n"),
         stderr="invalid profile name")
    case("config-profile-dependency-disabled", c,
         "a service depending on a service of an inactive profile", CONFIG, 1,
         files=compose("services:\n  a:\n    image: x\n    depends_on: [b]\n"
                       "  b:\n    image: y\n    profiles: [debug]\n"),
         stderr="depends on undefined service \"b\"")
    case("config-compose-file-env", c, "COMPOSE_FILE names the files to merge when there is no -f",
         json_config, 0,
         files={"one.yml": "services:\n  a:\n    image: x\n",
                "two.yml": "services:\n  a:\n    image: y\n"},
         env={"COMPOSE_FILE": "one.yml:two.yml"}, stdout='"a":{"image":"y"')
    case("config-compose-file-env-separator", c, "COMPOSE_PATH_SEPARATOR splits COMPOSE_FILE",
         json_config, 0,
         files={"one.yml": "services:\n  a:\n    image: x\n",
                "two.yml": "services:\n  a:\n    image: y\n"},
         env={"COMPOSE_FILE": "one.yml;two.yml", "COMPOSE_PATH_SEPARATOR": ";"},
         stdout='"a":{"image":"y"')
    case("config-compose-file-env-missing", c, "COMPOSE_FILE naming a missing file", CONFIG, 1,
         files={}, env={"COMPOSE_FILE": "nope.yml"}, stderr="nope.yml")
    case("config-command-string-split", c, "a string command is split into words as compose does",
         json_config, 0,
         files=compose("services:\n  a:\n    image: x\n    command: sh -c 'echo \"$$HOME\" && ls'\n"
                       "    entrypoint: \"/bin/tini --\"\n"),
         stdout='"command":["sh","-c","echo \\"$$HOME\\" && ls"],"entrypoint":["/bin/tini","--"]')
    case("config-command-shell-operator", c,
         "an unquoted shell operator in a string command (compose would silently drop the rest)",
         CONFIG, 1, files=compose("services:\n  a:\n    image: x\n    command: npm start && rm -rf /\n"),
         stderr="service.command has the shell operator \"&\"")
    case("config-command-unterminated-quote", c, "a string command with an unterminated quote",
         CONFIG, 1, files=compose("services:\n  a:\n    image: x\n    command: \"echo 'hi\"\n"),
         stderr="unterminated quote")
    case("config-dollar-printed-escaped", c, "an escaped $$ is printed as $$, so the output loads back",
         json_config, 0, files=compose("services:\n  a:\n    image: x\n    environment: {A: \"$$HOME\"}\n"),
         stdout='"A":"$$HOME"')
    case("config-build-tags-of-image-ok", c,
         "build.tags naming the service's own image (what config prints) loads", json_config, 0,
         files=compose("services:\n  a:\n    image: x\n    build: {context: ., tags: [x]}\n", Dockerfile="FROM x\n"),
         stdout='"tags":["x"]')
    case("config-build-tags-other-refused", c, "build.tags naming another image is refused", CONFIG, 1,
         files=compose("services:\n  a:\n    image: x\n    build: {context: ., tags: [x, y]}\n"),
         stderr="service.build.tags is not allowed")


def project_file_cases():
    """Files a compose file names (`extends`, `include`): regular, under the cap, inside the
    project, for directory and tar projects; and the service name length limit."""
    extends = "services:\n  app:\n    build: ./app\n    extends: {file: %s, service: s}\n"
    include = "include: [%s]\nservices:\n  app:\n    build: ./app\n"
    # Climbs from any directory to `/`, and a tar's compose file resolves against a scratch one.
    climb = "../" * 32 + "etc/passwd"
    for kind, template in (("extends", extends), ("include", include)):
        # /dev/null rather than /dev/zero: a regression must not eat the machine's memory
        # here (crates/compose-cli/tests/integration/config.rs reads /dev/zero under a memory limit).
        case(f"file-{kind}-device", "directory", f"{kind} naming a device through a link",
             CONFIG, 1, files=app(**{"docker-compose.yml": template % "base.yml"}),
             setup={"symlinks": [["base.yml", "/dev/null"]]},
             stderr="base.yml: is a character device, not a regular file")
        case(f"file-{kind}-directory", "directory", f"{kind} naming a directory", CONFIG, 1,
             files=app(**{"docker-compose.yml": template % "base", "base/x": "x"}),
             stderr="base: is a directory, not a file")
        for where, path, message in (("absolute", "/etc/passwd", "Absolute filepath not allowed: /etc/passwd"),
                                     ("traversal", climb, "Directory traversing not allowed : " + climb)):
            text = template % path
            case(f"file-{kind}-{where}", "directory", f"{kind} naming a host file ({where})", CONFIG, 1,
                 files=app(**{"docker-compose.yml": text}), stderr=message, stderr_not="root:")
            case(f"tar-{kind}-{where}", "tar", f"a tar project's {kind} naming a host file ({where})",
                 RESOLVE, 1, tar=tar_of(entry("docker-compose.yml", text), entry("app/Dockerfile", APP_DOCKERFILE)),
                 stderr=message, stderr_not="root:")
    case("file-service-name-256", "yaml", "a service name longer than an image name may be", CONFIG, 1,
         files=compose("services:\n  %s:\n    image: x\n" % ("s" * 256)),
         stderr="it is 256 characters long, the limit is 255")
    case("file-service-name-200k", "yaml", "a 200,000-character service name", CONFIG, 1,
         files={}, setup=gen("docker-compose.yml", "services:\n  ", "s", 200_000, ":\n    image: x\n"),
         stderr="it is 200000 characters long, the limit is 255")


def main():
    if os.path.isdir(CASES):
        shutil.rmtree(CASES)
    os.makedirs(CASES)
    for group in (yaml_cases, interpolation_cases, forbidden_cases, tar_cases, directory_cases,
                  dockerfile_cases, target_cases, balena_yml_cases, registry_secrets_cases,
                  cli_cases, project_file_cases):
        group()
    seed_fuzzers()
    print(f"{len(_names)} cases in {CASES}")


def seed_fuzzers():
    """Copies the corpus's small inputs to fuzz/seeds/<target>/, libFuzzer's starting points."""
    seeds = os.path.join(HERE, "..", "..", "fuzz", "seeds")
    if os.path.isdir(seeds):
        shutil.rmtree(seeds)
    picks = {"tar_split": [], "compose_parse": [], "template": [], "transpose": [], "dockerignore": []}
    for name in sorted(os.listdir(CASES)):
        root = os.path.join(CASES, name)
        for rel, target in (("project.tar", "tar_split"),
                            ("project/docker-compose.yml", "compose_parse"),
                            ("project/app/Dockerfile.template", "template"),
                            ("project/app/Dockerfile.template", "transpose"),
                            ("project/app/Dockerfile", "transpose"),
                            ("project/.dockerignore", "dockerignore"),
                            ("project/app/.dockerignore", "dockerignore")):
            path = os.path.join(root, rel)
            if os.path.isfile(path) and os.path.getsize(path) <= 8192:
                picks[target].append((name + "-" + os.path.basename(rel), path))
    for target, files in picks.items():
        os.makedirs(os.path.join(seeds, target))
        for seed_name, path in files:
            shutil.copy(path, os.path.join(seeds, target, seed_name))
    # `tar_pax` takes the body of one extended header: every one the cases use.
    os.makedirs(os.path.join(seeds, "tar_pax"))
    for i, body in enumerate(_pax_bodies):
        with open(os.path.join(seeds, "tar_pax", "pax-%02d" % i), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    main()

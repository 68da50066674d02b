#!/usr/bin/python3
"""gen_binding.py -- generates carboncopy/carboncopy_cdef.h, the cffi declarations
of the Python package, from include/carboncopy.h: nothing in it is copied by hand.

The header is run through the C preprocessor (system headers stubbed out, so
uint32_t, size_t and friends stay as written: cffi knows them natively), the
CC_* object-like macros are evaluated by the preprocessor and a small integer
evaluator, and the declarations are laid out one per line so the output does
not depend on the compiler's whitespace.

    gen_binding.py              rewrite carboncopy/carboncopy_cdef.h (the package data)
    gen_binding.py -o FILE      write FILE instead ("-" = stdout)
    gen_binding.py --check      exit 1 if carboncopy/carboncopy_cdef.h differs from the header
    gen_binding.py --header H   read another header (default: ../../include/carboncopy.h)

Needs a C preprocessor only when generating (env CC, default "cc"); the
generated file is committed and shipped in the package, so neither installing
nor importing it needs one. This script is a tool of the source tree, not
part of the package.
"""
import argparse
import ast
import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HEADER = os.path.normpath(os.path.join(HERE, "..", "..", "include", "carboncopy.h"))
DEFAULT_OUT = os.path.join(HERE, "carboncopy", "carboncopy_cdef.h")
PREFIX = "CC_"


class GenError(Exception):
    pass


def _preprocess(cc, header_text, extra, stub_names):
    """Runs `cc -E -P` over header_text + extra with every <system> include
    stubbed by an empty file; returns the output text."""
    with tempfile.TemporaryDirectory(prefix="cc-gen-") as d:
        stubs = os.path.join(d, "stubs")
        os.makedirs(stubs)
        for name in stub_names:
            path = os.path.join(stubs, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        src = os.path.join(d, "in.h")
        with open(src, "w") as f:
            f.write(header_text)
            f.write("\n")
            f.write(extra)
        cmd = shlex.split(cc) + [
            "-E", "-P", "-std=c11", "-nostdinc", "-I", stubs,
            # cffi's parser knows no GNU extensions; a future header may use them.
            "-D__attribute__(x)=", "-D__extension__=", "-D__restrict=", "-D__inline=",
            "-x", "c", src,
        ]
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        except FileNotFoundError:
            raise GenError("cannot run the C preprocessor %r (set CC)" % cc)
        if r.returncode != 0:
            raise GenError("%s failed:\n%s" % (" ".join(cmd), r.stderr))
        return r.stdout


_C_INT = re.compile(r"\b(0[xX][0-9a-fA-F]+|[0-9]+)([uUlL]*)\b")


def _eval_int(expr):
    """Evaluates a preprocessed C integer constant expression (literals,
    parentheses, + - * << >> | & ^ ~). Returns an int, a str for a string
    literal, or None when it is neither."""
    expr = expr.strip()
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', expr):
        return ast.literal_eval(expr)

    def lit(m):
        t = m.group(1)
        if len(t) > 1 and t[0] == "0" and t[1] not in "xX":
            return str(int(t, 8))  # C octal
        return t

    py = _C_INT.sub(lit, expr)
    try:
        tree = ast.parse(py, mode="eval")
    except SyntaxError:
        return None
    ops = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.LShift: lambda a, b: a << b, ast.RShift: lambda a, b: a >> b, ast.BitOr: lambda a, b: a | b,
        ast.BitAnd: lambda a, b: a & b, ast.BitXor: lambda a, b: a ^ b,
    }
    unops = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a, ast.Invert: lambda a: ~a}

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and type(n.value) is int:
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in unops:
            return unops[type(n.op)](ev(n.operand))
        raise ValueError(ast.dump(n))

    try:
        return ev(tree)
    except (ValueError, TypeError):
        return None


def _layout(text):
    """Lays preprocessed declarations out one per line (struct and enum
    members indented), independent of the preprocessor's spacing."""
    text = " ".join(text.split())
    out, line, depth, parens = [], "", 0, 0

    def flush():
        nonlocal line
        if line.strip():
            out.append("    " * depth + line.strip())
        line = ""

    for ch in text:
        if ch == "(":
            parens += 1
        elif ch == ")":
            parens -= 1
        if ch == "{":
            line += " {"
            flush()
            depth += 1
        elif ch == "}":
            flush()
            depth -= 1
            line = "}"
        elif ch in ";," and parens == 0 and (ch == ";" or depth > 0):
            line += ch
            flush()
        else:
            line += ch
    flush()
    def tidy(l):
        indent = len(l) - len(l.lstrip())
        body = re.sub(r" +", " ", l.strip()).replace(" ;", ";").replace(" ,", ",")
        return l[:indent] + body

    return "\n".join(tidy(l) for l in out)


def generate(header=DEFAULT_HEADER, cc=None):
    """Returns the text of carboncopy_cdef.h for `header`."""
    cc = cc or os.environ.get("CC") or "cc"
    with open(header) as f:
        src = f.read()
    stubs = sorted(set(re.findall(r"^\s*#\s*include\s*<([^>]+)>", src, re.M)))

    decls = _layout(_preprocess(cc, src, "", stubs))

    # Object-like CC_* macros, in the order the header defines them.
    names = []
    for m in re.finditer(r"^\s*#\s*define\s+(%s[A-Za-z0-9_]*)(\(?)" % PREFIX, src, re.M):
        if not m.group(2) and m.group(1) not in names:
            names.append(m.group(1))
    probe = "".join('__cc_const("%s", %s)__cc_end\n' % (n, n) for n in names)
    expanded = _preprocess(cc, src, probe, stubs)
    values = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r'__cc_const\s*\(\s*"(\w+)"\s*,(.*?)\)\s*__cc_end', expanded, re.S)
    )
    # The probe lines come after the header: keep them out of the declarations.
    decls_with_probe = _layout(expanded.split("__cc_const", 1)[0])
    if decls_with_probe != decls:
        raise GenError("the constant probe changed the declarations (unexpected preprocessor output)")

    lines = [
        "/* carboncopy_cdef.h -- GENERATED by examples/python/gen_binding.py from",
        " * include/carboncopy.h; do not edit: run gen_binding.py after changing the header. */",
        "",
        "/* integer constants */",
    ]
    strings = []
    for n in names:
        if n not in values:
            raise GenError("the preprocessor lost the probe of %s" % n)
        v = _eval_int(values[n])
        if isinstance(v, int):
            lines.append("#define %s %d" % (n, v))
        elif isinstance(v, str):
            strings.append((n, values[n].strip()))
        elif values[n].strip():
            lines.append("/* %s is not an integer constant: %s */" % (n, " ".join(values[n].split())))
    if strings:
        lines.append("")
        lines.append("/* string constants (read by carboncopy/__init__.py; cffi's cdef has no string macros) */")
        for n, v in strings:
            if "*/" in v or "\n" in v:
                raise GenError("string constant %s cannot be put in a comment" % n)
            lines.append("/* string %s %s */" % (n, v))
    lines.append("")
    lines.append("/* declarations */")
    lines.append(decls)
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="generate the cffi declarations from carboncopy.h")
    ap.add_argument("--header", default=DEFAULT_HEADER)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    a = ap.parse_args(argv)
    try:
        text = generate(a.header)
    except GenError as e:
        print("gen_binding: %s" % e, file=sys.stderr)
        return 2
    out = a.output or DEFAULT_OUT
    if a.check:
        try:
            with open(out) as f:
                old = f.read()
        except OSError as e:
            print("gen_binding: %s" % e, file=sys.stderr)
            return 1
        if old != text:
            import difflib
            sys.stderr.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), out, "generated"))
            print("gen_binding: %s is out of date; run %s" % (out, sys.argv[0]), file=sys.stderr)
            return 1
        print("gen_binding: %s is up to date with %s" % (out, a.header))
        return 0
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

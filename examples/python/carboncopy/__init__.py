"""carboncopy -- the Python package of libcarboncopy: a thin Pythonic layer
over the C library, loaded with cffi in ABI mode (nothing is compiled).

Nothing here repeats a declaration of the header: ffi.cdef() reads the
package's carboncopy_cdef.h (generated from include/carboncopy.h by
examples/python/gen_binding.py), constants come from it, and Context, Session
and Job forward any method they do not define themselves to the cc_context_*,
cc_session_* or cc_job_* function of that name, so a function added to the
header is callable without touching this file. What is written by hand is
only what makes the API Pythonic: errors as exceptions, events as objects,
and an event loop that runs jobs on threads like examples/common.c.

    import carboncopy as cc
    ctx = cc.Context(cc.CC_ROLE_CONSOLE)
    ctx.set_ca_file("ca.pem")
    ctx.add_builtin_authenticator("nt")
    s = cc.Session(ctx, on_event=print)
    s.set_credentials("alice", "WORKGROUP", b"secret")
    s.connect("client.example.com", 0)
    s.run()                      # raises cc.CCError on failure

The shared library is looked for, in this order (LIBRARY_PATH says which was
taken): the environment variable CARBONCOPY_LIB (the path of
libcarboncopy.so.1, or its directory; when set, nothing else is tried), the
libdir of `pkg-config carboncopy`, and the system loader's search
(LD_LIBRARY_PATH, the ld.so cache, the default directories).
"""
import ast
import os
import queue
import re
import select
import shlex
import subprocess
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import cffi

_HERE = os.path.dirname(os.path.abspath(__file__))
CDEF_FILE = os.path.join(_HERE, "carboncopy_cdef.h")
ENV_LIB = "CARBONCOPY_LIB"


def _load_cdef() -> str:
    try:
        with open(CDEF_FILE) as f:
            return f.read()
    except FileNotFoundError:
        raise ImportError(
            "%s is missing: it is generated from include/carboncopy.h by "
            "examples/python/gen_binding.py and shipped with the package" % CDEF_FILE
        ) from None


def _pkg_config_libdir() -> Tuple[Optional[str], str]:
    """libdir of `pkg-config carboncopy` ($PKG_CONFIG, default pkg-config),
    or None and why not."""
    cmd = shlex.split(os.environ.get("PKG_CONFIG") or "pkg-config")
    try:
        r = subprocess.run(cmd + ["--variable=libdir", "carboncopy"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "cannot run %s (%s)" % (" ".join(cmd), e)
    libdir = r.stdout.strip()
    if r.returncode != 0 or not libdir:
        why = " ".join(r.stderr.split()) or "exit %d" % r.returncode
        return None, "%s --variable=libdir carboncopy found no module (%s)" % (" ".join(cmd), why)
    return libdir, ""


def _open_library(ffi: Any, soname: str) -> Tuple[str, Any]:
    """dlopens the library by the three ways of the module's docstring, in
    order; ImportError naming all three when none gives it."""
    env = os.environ.get(ENV_LIB)
    if env:
        # Set means meant: a stale copy elsewhere must not stand in for the one asked for.
        path = os.path.join(env, soname) if os.path.isdir(env) else env
        try:
            return path, ffi.dlopen(path)
        except OSError as e:
            raise ImportError(
                "cannot load libcarboncopy: 1. %s=%s: %s (2. pkg-config and 3. the system loader "
                "are not tried while %s is set)" % (ENV_LIB, env, e, ENV_LIB)
            ) from None
    tried = ["1. %s is not set" % ENV_LIB]
    libdir, why = _pkg_config_libdir()
    if libdir:
        path = os.path.join(libdir, soname)
        try:
            return path, ffi.dlopen(path)
        except OSError as e:
            tried.append("2. pkg-config names libdir %s: %s" % (libdir, e))
    else:
        tried.append("2. " + why)
    try:
        return soname, ffi.dlopen(soname)
    except OSError as e:
        tried.append("3. the system loader: %s" % e)
    raise ImportError(
        "cannot find %s:\n  %s\nSet %s to its path, PKG_CONFIG_PATH to the directory of an "
        "installed carboncopy.pc, or LD_LIBRARY_PATH to its directory." % (soname, "\n  ".join(tried), ENV_LIB)
    )


_cdef_text = _load_cdef()
ffi = cffi.FFI()
ffi.cdef(_cdef_text)
# The soname the header was made for: the library of another major version is another ABI.
SONAME = "libcarboncopy.so.%s" % re.search(r"^#define CC_VERSION_MAJOR (\d+)$", _cdef_text, re.M).group(1)
LIBRARY_PATH, lib = _open_library(ffi, SONAME)

# Every CC_* constant of the header (macros and enum values) as a module global.
for _name in dir(lib):
    if _name.startswith("CC_"):
        globals()[_name] = getattr(lib, _name)
for _m in re.finditer(r'/\* string (CC_\w+) ("(?:[^"\\]|\\.)*") \*/', _cdef_text):
    globals()[_m.group(1)] = ast.literal_eval(_m.group(2))
del _name, _m
# The header's version: the package is generated from it (pyproject.toml says the same).
__version__ = globals()["CC_VERSION_STRING"]

if lib.cc_version() >> 16 != lib.CC_VERSION_MAJOR:
    raise ImportError(
        "%s is version %s; this binding was generated for major version %d"
        % (LIBRARY_PATH, ffi.string(lib.cc_version_string()).decode(), lib.CC_VERSION_MAJOR)
    )


# --- small helpers -----------------------------------------------------------


def _str(p: Any) -> Optional[str]:
    """A C string as str (None for NULL)."""
    return None if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")


def _arg(v: Any) -> Any:
    """A Python argument as cffi takes it: str -> UTF-8, None -> NULL, handles -> pointer."""
    if v is None:
        return ffi.NULL
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, _Handle):
        return v._ptr()
    return v


def version() -> int:
    return lib.cc_version()


def version_string() -> str:
    return _str(lib.cc_version_string())


def strerror(code: int) -> str:
    return _str(lib.cc_strerror(code))


def err_name(code: int) -> str:
    return _str(lib.cc_err_name(code))


def state_name(state: int) -> str:
    return _str(lib.cc_state_name(state))


# Exit codes of the example programs (README "Exit codes"; examples/common.h).
EX_OK, EX_USAGE, EX_CONNECT, EX_TLS, EX_LICENSE, EX_AUTH, EX_TIMEOUT, EX_PROTOCOL = 0, 2, 3, 4, 5, 6, 7, 8


def exit_code(err: int) -> int:
    """Maps a cc_error to the exit code cc-console uses (ex_exit_code)."""
    if err >= 0:
        return EX_OK
    if err in (lib.CC_ERR_RESOLVE, lib.CC_ERR_CONNECT, lib.CC_ERR_IO):
        return EX_CONNECT
    if lib.CC_ERR_TLS_CONFIG <= err <= lib.CC_ERR_TLS:
        return EX_TLS
    if lib.CC_ERR_LICENSE_CONFIG <= err <= lib.CC_ERR_LICENSE_DENIED:
        return EX_LICENSE
    if lib.CC_ERR_AUTH_UNAVAILABLE <= err <= lib.CC_ERR_AUTH:
        return EX_AUTH
    if err in (lib.CC_ERR_TIMEOUT, lib.CC_ERR_IDLE_TIMEOUT):
        return EX_TIMEOUT
    return EX_PROTOCOL


class CCError(Exception):
    """A negative cc_error: .code, .name (cc_err_name), .message (cc_strerror)
    and .detail (cc_session_errmsg / cc_context_errmsg at the time)."""

    def __init__(self, code: int, detail: Optional[str] = "") -> None:
        self.code = code
        self.name = err_name(code)
        self.message = strerror(code)
        self.detail = detail or ""
        super().__init__("%s: %s%s" % (self.name, self.message, ": " + self.detail if self.detail else ""))


# --- handles -----------------------------------------------------------------


class _Handle:
    """Forwards obj.NAME(args) to lib.<prefix>NAME(obj, args): str arguments
    become UTF-8, a negative int result raises CCError with the handle's
    error detail, a char * result becomes str."""

    _prefix = ""
    _p: Any = None

    def _ptr(self) -> Any:
        if self._p is None:
            raise ValueError("%s has been freed" % type(self).__name__)
        return self._p

    def _errmsg(self) -> str:
        return ""

    def _check(self, r: int) -> int:
        if r < 0:
            raise CCError(r, self._errmsg())
        return r

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            fn = getattr(lib, self._prefix + name)
        except AttributeError:
            raise AttributeError("%s has no method %s (no %s%s in the header)"
                                 % (type(self).__name__, name, self._prefix, name)) from None
        result = ffi.typeof(fn).result

        def call(*args):
            r = fn(self._ptr(), *[_arg(a) for a in args])
            if result.kind == "pointer" and result.item.cname == "char":
                return _str(r)
            if result.cname == "int":
                return self._check(r)
            return r

        call.__name__ = name
        call.__doc__ = "forwards to %s%s: %s" % (self._prefix, name, result.cname)
        return call


class Context(_Handle):
    """A cc_context: one configuration (role, TLS material, licence policy,
    authenticators) shared by sessions. Any cc_context_NAME(ctx, ...) of the
    header is ctx.NAME(...)."""

    _prefix = "cc_context_"

    def __init__(self, role: int) -> None:
        err = ffi.new("int *")
        p = lib.cc_context_new(role, ffi.NULL, err)
        if p == ffi.NULL:
            raise CCError(err[0], "cc_context_new")
        self._p = p
        self._sessions: list = []
        self._log_cb = None

    def _errmsg(self) -> str:
        return _str(lib.cc_context_errmsg(self._p)) if self._p is not None else ""

    def set_log(self, fn: Optional[Callable[[int, str], None]], max_level: Optional[int] = None) -> None:
        """fn(level, message) receives the library's log lines (None stops)."""
        if fn is None:
            self._check(lib.cc_context_set_log(self._ptr(), ffi.NULL, ffi.NULL, 0))
            self._log_cb = None
            return
        cb = ffi.callback("cc_log_fn", lambda user, level, msg: fn(level, _str(msg)))
        self._check(lib.cc_context_set_log(self._ptr(), cb, ffi.NULL,
                                           lib.CC_LOG_INFO if max_level is None else max_level))
        self._log_cb = cb  # the C side keeps the pointer: keep the callback alive

    def free(self) -> None:
        """Frees the context after its sessions (which the library requires)."""
        for s in list(self._sessions):
            s.free()
        if self._p is not None:
            lib.cc_context_free(self._p)
            self._p = None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()


class Event:
    """A cc_event copied into Python: every field of the header's struct that
    lies within the library's struct_size (others are None); text/mechanism
    as str, data as bytes."""

    _TYPES = {getattr(lib, n): n[len("CC_EVENT_"):].lower() for n in dir(lib) if n.startswith("CC_EVENT_")}

    type: int
    type_name: str

    def __init__(self, ev: Any) -> None:
        size = ev.struct_size
        for name, field in ffi.typeof("cc_event").fields:
            if field.offset + ffi.sizeof(field.type) > size:
                value = None
            elif name == "data":
                value = bytes(ffi.buffer(ev.data, ev.len)) if ev.data != ffi.NULL else b""
            elif field.type.kind == "pointer" and field.type.item.cname == "char":
                value = _str(getattr(ev, name))
            elif field.type.kind == "pointer":
                value = None  # valid only during the callback
            else:
                value = getattr(ev, name)
            setattr(self, name, value)
        self.type_name = self._TYPES.get(self.type, str(self.type))

    def __getattr__(self, name: str) -> Any:
        # Fields are set from the header's struct: for a type checker, any name may be one.
        raise AttributeError(name)

    def __repr__(self) -> str:
        skip = ("struct_size", "type", "type_name")
        fields = ", ".join("%s=%r" % (k, v) for k, v in vars(self).items() if k not in skip and v not in (None, 0, ""))
        return "<Event %s %s>" % (self.type_name, fields)


class Session(_Handle):
    """A cc_session: one connection. Any cc_session_NAME(s, ...) of the header
    is s.NAME(...). Events go to on_event(event) (or override on_event);
    run() drives the session to its end on this thread, running jobs with
    cc_job_run() on worker threads and handing them back here."""

    _prefix = "cc_session_"
    JOIN_DEADLINE_S = 60.0  # jobs are bounded by their own timeouts; this is a backstop

    def __init__(self, ctx: Context, on_event: Optional[Callable[["Event"], None]] = None) -> None:
        err = ffi.new("int *")
        p = lib.cc_session_new(ctx._ptr(), err)
        if p == ffi.NULL:
            raise CCError(err[0], ctx._errmsg())
        self._p = p
        self._ctx = ctx  # the context must outlive the session
        ctx._sessions.append(self)
        if on_event is not None:
            self.on_event = on_event
        self._exc = None
        self._kick = False
        self._cb = ffi.callback("cc_event_fn", self._trampoline)
        lib.cc_session_set_event_callback(p, self._cb, ffi.NULL)
        # Workers hand finished jobs back through a queue and wake the loop
        # through a pipe (the self-pipe trick of examples/common.c).
        self._done = queue.SimpleQueue()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        self._workers: set = set()

    # -- events --

    def on_event(self, event: Event) -> None:
        """Called for each event (from within step()); override or pass on_event."""

    def _trampoline(self, user, session, ev):
        # An exception must not unwind through C: keep it, raise it after step.
        try:
            if self._exc is None:
                self.on_event(Event(ev))
        except BaseException as e:  # noqa: B902 -- re-raised by step()
            self._exc = e

    def _errmsg(self) -> str:
        return _str(lib.cc_session_errmsg(self._p)) if self._p is not None else ""

    # -- the calls that differ from plain forwarding --

    def fd(self) -> int:
        """The socket to poll, or -1 (no socket yet, or a host transport)."""
        return lib.cc_session_fd(self._ptr())

    def error(self) -> int:
        """The error that ended the session (a negative cc_error), 0 if none."""
        return lib.cc_session_error(self._ptr())

    def set_credentials(self, user: Optional[str], domain: Optional[str] = None,
                        password: "Optional[str | bytes | bytearray]" = None) -> None:
        """The password (str, bytes or bytearray) goes through a C buffer this
        method wipes; wipe your own bytearray afterwards."""
        pw = ffi.NULL
        n = 0
        if password is not None:
            raw = password.encode("utf-8") if isinstance(password, str) else password
            n = len(raw) + 1
            pw = ffi.new("char[]", n)
            ffi.memmove(pw, raw, len(raw))
        try:
            self._check(lib.cc_session_set_credentials(self._ptr(), _arg(user), _arg(domain), pw))
        finally:
            if n:
                ffi.memmove(pw, bytes(n), n)

    def send(self, channel: int, data: Any) -> int:
        """Queues data; returns 0 or CC_SEND_HIGH_WATER; raises CCError
        (CC_ERR_AGAIN when it does not fit at all)."""
        buf = ffi.from_buffer(data)
        r = self._check(lib.cc_session_send(self._ptr(), channel, buf, len(buf)))
        self._kick = True
        return r

    def close(self, code: int = 0, reason: Optional[str] = None) -> int:
        """Orderly close (cc_session_close); run() then ends when it is done."""
        r = self._check(lib.cc_session_close(self._ptr(), code, _arg(reason)))
        self._kick = True
        return r

    def license(self) -> Optional[Tuple[bool, int, int]]:
        """(granted, count, in_use) once the verdict is known, else None."""
        g, c, u = ffi.new("int *"), ffi.new("uint32_t *"), ffi.new("uint32_t *")
        r = lib.cc_session_license(self._ptr(), g, c, u)
        if r == lib.CC_ERR_STATE:
            return None
        self._check(r)
        return bool(g[0]), c[0], u[0]

    def attributes(self) -> Dict[str, str]:
        """The authenticator's account details as a dict."""
        out, k, v = {}, ffi.new("char **"), ffi.new("char **")
        i = 0
        while lib.cc_session_auth_attribute(self._ptr(), i, k, v) == 0:
            out[_str(k[0])] = _str(v[0])
            i += 1
        return out

    def channel_binding(self) -> bytes:
        """The 32-byte TLS channel binding (tls-exporter) once TLS is up."""
        buf = ffi.new("uint8_t[]", 32)
        self._check(lib.cc_session_channel_binding(self._ptr(), buf, 32))
        return bytes(ffi.buffer(buf, 32))

    # -- jobs on threads --

    def answer_job(self, job: "Job") -> bool:
        """Override to answer a job on the loop thread (job.type(), then
        job.license_set_figures(...), job.resolve_add_address(...) or
        job.fail(...)); return True when answered, and it goes back to the
        session. By default (False) every job runs with cc_job_run on a thread."""
        return False

    def _start_job(self, job):
        def work():
            try:
                lib.cc_job_run(job)  # blocks without the GIL, bounded by the job's timeout
            finally:
                self._done.put(job)
                try:
                    os.write(self._wfd, b"j")
                except OSError:
                    pass

        t = threading.Thread(target=work, name="cc-job", daemon=True)
        self._workers.add(t)
        try:
            t.start()
        except RuntimeError:
            self._workers.discard(t)
            lib.cc_job_fail(job, lib.CC_ERR_NOMEM, b"cannot start a worker thread")
            self._done.put(job)
            os.write(self._wfd, b"j")

    def _collect_jobs(self):
        """Hands finished jobs back to the session (on the loop thread)."""
        try:
            while os.read(self._rfd, 512):
                pass
        except BlockingIOError:
            pass
        self._workers = {t for t in self._workers if t.is_alive()}
        while True:
            try:
                job = self._done.get_nowait()
            except queue.Empty:
                return
            lib.cc_session_job_done(self._ptr(), job)

    def step(self) -> int:
        """cc_session_step, taking its jobs: returns the CC_WANT_* mask (> 0)
        or 0 once closed cleanly; raises CCError once the session failed, or
        the exception an event handler raised."""
        for _ in range(1000):  # each round takes at least one job: bounded
            self._kick = False
            r = lib.cc_session_step(self._ptr())
            if self._exc is not None:
                e, self._exc = self._exc, None
                raise e
            if r < 0:
                raise CCError(r, self._errmsg())
            if r == 0 or not (r & lib.CC_WANT_JOB):
                return r
            took = False
            while True:
                job = lib.cc_session_take_job(self._p)
                if job == ffi.NULL:
                    break
                took = True
                if self.answer_job(Job(job)):
                    lib.cc_session_job_done(self._p, job)
                else:
                    self._start_job(job)
            if not took:
                return r
        return r

    def run(self) -> int:
        """Drives the session until it ends: poll() on cc_session_fd and the
        job pipe, with cc_session_timeout_ms as the deadline. Returns 0 after
        an orderly close; raises CCError when the session fails."""
        while True:
            r = self.step()
            if r == 0:
                return 0
            if self._kick:
                continue  # a handler queued data or closed: let step write it now
            p = select.poll()
            fd = lib.cc_session_fd(self._p)
            mask = (select.POLLIN if r & lib.CC_WANT_READ else 0) | (select.POLLOUT if r & lib.CC_WANT_WRITE else 0)
            if fd >= 0 and mask:
                p.register(fd, mask)
            p.register(self._rfd, select.POLLIN)
            t = lib.cc_session_timeout_ms(self._p)
            p.poll(None if t < 0 else t)
            self._collect_jobs()

    # -- lifetime --

    def free(self) -> None:
        """Frees the session, then waits for jobs still on workers and frees them."""
        if self._p is None:
            return
        lib.cc_session_free(self._p)
        self._p = None
        for t in list(self._workers):
            t.join(self.JOIN_DEADLINE_S)
        while True:
            try:
                job = self._done.get_nowait()
            except queue.Empty:
                break
            lib.cc_job_free(job)
        if not any(t.is_alive() for t in self._workers):
            os.close(self._rfd)
            os.close(self._wfd)
        # else: a worker overran its deadline; its job and the pipe are left alone, not freed under it.
        self._workers = set()
        if self in self._ctx._sessions:
            self._ctx._sessions.remove(self)
        self._cb = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()


class Job(_Handle):
    """A cc_job handed to Session.answer_job(): any cc_job_NAME(job, ...) of
    the header is job.NAME(...) (type(), license_url(), license_set_figures(),
    license_feed(), resolve_host(), ...); .ptr is the raw cc_job *. Valid
    only until answer_job returns."""

    _prefix = "cc_job_"

    def __init__(self, ptr: Any) -> None:
        self._p = ptr
        self.ptr = ptr

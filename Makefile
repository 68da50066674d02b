# Makefile -- builds libcarboncopy (shared and static), the example programs,
# the tests, and installs them. `make help` lists the targets.

VERSION      := 1.0.0
SOVERSION    := 1
PREFIX       ?= /usr/local
# Debian's multiarch library directory (lib/x86_64-linux-gnu) where the
# compiler names one, else lib: the places ld.so, pkg-config and CMake search.
MULTIARCH    := $(shell $(CC) -print-multiarch 2>/dev/null)
LIBDIR       ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR     ?= $(LIBDIR)/cmake/carboncopy
BINDIR       ?= $(PREFIX)/bin
MANDIR       ?= $(PREFIX)/share/man
DOCDIR       ?= $(PREFIX)/share/doc/carboncopy
DESTDIR      ?=

# SANITIZE=1 builds everything with AddressSanitizer + UBSan into build/asan.
ifeq ($(SANITIZE),1)
B        := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
B        := build
SANFLAGS :=
endif

DEPS        := openssl libcurl expat krb5-gssapi krb5
DEP_CFLAGS  := $(shell pkg-config --cflags $(DEPS))
DEP_LIBS    := $(shell pkg-config --libs $(DEPS)) -lpthread
comma       := ,
empty       :=
space       := $(empty) $(empty)
CFLAGS      ?= -O2 -g
WARNFLAGS   := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -Wformat=2 -Wvla
DEFS        := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DXML_DTD -DXML_GE=1
ALL_CFLAGS   = $(WARNFLAGS) $(CFLAGS) $(SANFLAGS) $(DEFS) -Iinclude $(DEP_CFLAGS)
LIB_CFLAGS   = $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LDFLAGS     ?=

# Every .c under lib/, however deep the layers nest.
LIB_SRCS  := $(sort $(shell find lib -name '*.c'))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/obj/%.o)
SONAME    := libcarboncopy.so.$(SOVERSION)
SHLIB     := $(B)/libcarboncopy.so.$(VERSION)
# The installed archive holds one object whose only global symbols are the
# cc_* functions of the version script, as the shared library exports; the
# tests, the benchmarks and whoever reaches internal (cc__) functions link
# the internal archive, which is never installed.
STLIB     := $(B)/libcarboncopy-internal.a
STLIB_PUB := $(B)/libcarboncopy.a
LD        ?= ld
OBJCOPY   ?= objcopy
MAP       := lib/carboncopy.map

EX_COMMON := $(B)/obj/examples/common.o $(B)/obj/examples/diag.o $(B)/obj/examples/psk.o
EX_BINS   := $(B)/bin/cc-console $(B)/bin/cc-client $(B)/bin/simple-console
# examples/uv-console.c, the libuv host, is built where pkg-config finds libuv (Debian: libuv1-dev).
HAVE_LIBUV := $(shell pkg-config --exists libuv && echo 1)
ifeq ($(HAVE_LIBUV),1)
EX_BINS   += $(B)/bin/uv-console
endif

TEST_SRCS := $(sort $(wildcard test/test-*.c))
TEST_BINS := $(TEST_SRCS:test/%.c=$(B)/test/%)
TEST_HELPER_SRCS := $(filter-out $(TEST_SRCS),$(wildcard test/*.c))
TEST_HELPER_OBJS := $(TEST_HELPER_SRCS:%.c=$(B)/obj/%.o)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)
# Every object the pattern rule compiles; each has a .d file (-MMD -MP), so
# touching any header rebuilds exactly the objects that include it.
ALL_OBJS  := $(LIB_OBJS) $(patsubst %.c,$(B)/obj/%.o,$(wildcard examples/*.c test/*.c bench/*.c))
# Man pages (doc/man): section 1 for the programs, 3 for the library. The
# other names of a page's NAME section become symlinks at install
# (doc/man/links.sh), so every function has its page.
MAN1 := $(sort $(wildcard doc/man/*.1))
MAN3 := $(sort $(wildcard doc/man/*.3))
# Installed with the library into DOCDIR, where the man pages point.
DOCS     := $(sort $(wildcard doc/*.md)) README.md CHANGELOG.md LICENSE
DOC_EXAMPLES := $(sort $(wildcard examples/*.c examples/*.h))

.PHONY: all lib examples tests check bench install uninstall abi-check abi-baseline demo \
        format clean help valgrind dist

all: lib examples

lib: $(SHLIB) $(B)/$(SONAME) $(B)/libcarboncopy.so $(STLIB) $(STLIB_PUB)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(SHLIB): $(LIB_OBJS) $(MAP)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(MAP) -Wl,-z,defs \
	  $(SANFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJS) $(DEP_LIBS)

$(B)/$(SONAME): $(SHLIB)
	ln -sf $(notdir $(SHLIB)) $@
$(B)/libcarboncopy.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(STLIB): $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

# ld -r links the objects into one, so calls between them are resolved inside
# it; objcopy then makes every symbol but the exported ones local.
$(STLIB_PUB): $(LIB_OBJS) $(MAP)
	rm -f $@ $(B)/carboncopy.o $(B)/carboncopy-r.o
	grep -oE '^ +cc_[a-z0-9_]+;' $(MAP) | tr -d ' ;' > $(B)/exports.txt
	$(LD) -r -o $(B)/carboncopy-r.o $(LIB_OBJS)
	$(OBJCOPY) --keep-global-symbols=$(B)/exports.txt $(B)/carboncopy-r.o $(B)/carboncopy.o
	$(AR) rcs $@ $(B)/carboncopy.o
	rm -f $(B)/carboncopy-r.o

examples: $(EX_BINS)
ifneq ($(HAVE_LIBUV),1)
	@echo "make: libuv not found by pkg-config (Debian: libuv1-dev): examples/uv-console.c not built"
endif

# Examples link the shared library the way a user's program would.
$(B)/bin/%: $(B)/obj/examples/%.o $(EX_COMMON) $(B)/libcarboncopy.so
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(EX_COMMON) -L$(B) -lcarboncopy \
	  -Wl,-rpath,'$$ORIGIN/..' -lcrypto -lpthread

ifeq ($(HAVE_LIBUV),1)
$(B)/obj/examples/uv-console.o: ALL_CFLAGS += $(shell pkg-config --cflags libuv)
$(B)/bin/uv-console: $(B)/obj/examples/uv-console.o $(EX_COMMON) $(B)/libcarboncopy.so
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(EX_COMMON) -L$(B) -lcarboncopy \
	  -Wl,-rpath,'$$ORIGIN/..' $(shell pkg-config --libs libuv) -lcrypto -lpthread
endif

tests: all $(TEST_BINS) $(BENCH_BINS)

# Tests link the internal archive so they can reach internal (cc__) functions too.
$(B)/test/%: $(B)/obj/test/%.o $(TEST_HELPER_OBJS) $(EX_COMMON) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJS) $(EX_COMMON) $(STLIB) $(DEP_LIBS)

$(B)/bench/%: $(B)/obj/bench/%.o $(TEST_HELPER_OBJS) $(EX_COMMON) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJS) $(EX_COMMON) $(STLIB) $(DEP_LIBS)

# Runs every test (C binaries and shell scripts); ends with "N passed, N failed".
# T=test-session (or T=test-abi.sh) runs one test file, building only what it needs.
ifeq ($(T),)
CHECK_DEPS := tests
else
CHECK_DEPS := all $(if $(wildcard test/$(T:%.sh=%).c),$(B)/test/$(T:%.sh=%))
endif
check: $(CHECK_DEPS)
	@CC="$(CC)" SANITIZE="$(SANITIZE)" test/run.sh $(B) $(T)

# The same C tests under valgrind's leak checker (no sanitizer build).
valgrind: tests
	@VALGRIND=1 test/run.sh $(B)

bench: all $(BENCH_BINS)
	@bench/run.sh $(B)

# One command for a newcomer: a console and a client on loopback through the
# whole connection process.
demo: all
	@examples/demo.sh $(B)

# `make fuzz`: libFuzzer targets for the parsers of untrusted input (test/fuzz/,
# run by test/test-fuzz.sh). Needs clang and its fuzzer runtime, so it is in
# neither `all` nor `check`'s build; the library is rebuilt with the same
# sanitizers into build/fuzz/obj.
FUZZ_CC     ?= clang
FUZZ_B      := build/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
FUZZ_CFLAGS  = -std=c11 -g -O1 -Wall -Wextra -Wno-unused-parameter $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
               $(DEFS) -Iinclude $(DEP_CFLAGS)
FUZZ_SRCS   := $(sort $(wildcard test/fuzz/fuzz-*.c))
FUZZ_BINS   := $(FUZZ_SRCS:test/fuzz/%.c=$(FUZZ_B)/%)
FUZZ_OBJS   := $(LIB_SRCS:%.c=$(FUZZ_B)/obj/%.o)
# What the whole-session targets share (the peer the harness plays).
FUZZ_PEER   := $(FUZZ_B)/obj/test/fuzz/peer.o

.PHONY: fuzz
fuzz: $(FUZZ_BINS)

$(FUZZ_OBJS) $(FUZZ_SRCS:%.c=$(FUZZ_B)/obj/%.o): $(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

# The peer without coverage: its own branches (the allocator OpenSSL calls
# thousands of times a run) are not the library's and must not steer the fuzzer.
$(FUZZ_PEER): $(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS)) -MMD -MP -c $< -o $@

$(FUZZ_BINS): $(FUZZ_B)/%: $(FUZZ_B)/obj/test/fuzz/%.o $(FUZZ_PEER) $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_PEER) $(FUZZ_OBJS) $(DEP_LIBS)

-include $(FUZZ_PEER:.o=.d)

# --- install ---------------------------------------------------------------
# Everything that names an install directory (carboncopy.pc, the tools' run
# path) is written by the install recipe itself, from the variables of that
# very `make install`: a file made once and kept would carry the first PREFIX.

# The tools installed into BINDIR (the other examples are for reading).
TOOLS        := cc-console cc-client
# The installed tools find the library through a run path to LIBDIR, unless
# LIBDIR is one the dynamic linker searches anyway (or TOOLS_RPATH= is given).
TOOLS_RPATH  ?= $(if $(filter /lib /usr/lib /lib/$(MULTIARCH) /usr/lib/$(MULTIARCH),$(LIBDIR)),,$(LIBDIR))
# carboncopy.pc: paths under PREFIX relative to ${prefix}. The dependencies go
# to Libs.private as the linker flags they are on this system, not as
# Requires.private: pkg-config would add their Cflags (krb5's include
# directory) to every consumer's compile, and with --static their own static
# dependencies, which Debian does not install.
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
PC_LIBS_PRIVATE := $(strip $(DEP_LIBS))

# The CMake package finds its prefix from its own directory (CMAKEDIR), when
# that is under PREFIX: as many "/.." as CMAKEDIR has components below PREFIX.
CM_UP          = $(subst $(space),/,$(patsubst %,..,$(subst /, ,$(patsubst $(PREFIX)/%,%,$(CMAKEDIR)))))
CM_PREFIX_LINE = $(if $(filter $(PREFIX)/%,$(CMAKEDIR)),get_filename_component(_carboncopy_prefix \
                 "$${CMAKE_CURRENT_LIST_DIR}/$(CM_UP)" ABSOLUTE),set(_carboncopy_prefix "$(PREFIX)"))
CM_LIBDIR      = $(patsubst $(PREFIX)/%,$${_carboncopy_prefix}/%,$(LIBDIR))
CM_INCLUDEDIR  = $(patsubst $(PREFIX)/%,$${_carboncopy_prefix}/%,$(INCLUDEDIR))
SIZEOF_VOID_P := $(shell echo __SIZEOF_POINTER__ | $(CC) -E -P -x c - 2>/dev/null | tail -n 1)
VERSION_MAJOR := $(firstword $(subst ., ,$(VERSION)))
CM_SED = sed -e 's|@CM_PREFIX_LINE@|$(CM_PREFIX_LINE)|' -e 's|@CM_LIBDIR@|$(CM_LIBDIR)|g' \
	     -e 's|@CM_INCLUDEDIR@|$(CM_INCLUDEDIR)|g' -e 's|@CM_LIBS_PRIVATE@|$(subst $(space),;,$(PC_LIBS_PRIVATE))|g' \
	     -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' \
	     -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' -e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g'

# The man pages name the installed files by the paths of this install (in roff,
# with escaped hyphens).
roff_path = $(subst -,\\-,$(1))
MAN_SED = sed -e 's|@DOCDIR@|$(call roff_path,$(DOCDIR))|g' -e 's|@INCLUDEDIR@|$(call roff_path,$(INCLUDEDIR))|g' \
	      -e 's|@LIBDIR@|$(call roff_path,$(LIBDIR))|g' -e 's|@PKGCONFIGDIR@|$(call roff_path,$(PKGCONFIGDIR))|g' \
	      -e 's|@CMAKEDIR@|$(call roff_path,$(CMAKEDIR))|g'

# The Python package (examples/python/carboncopy: pure Python, cffi in ABI mode) goes
# where Debian's python3 looks for the modules of PREFIX: /usr/lib/python3/dist-packages
# for /usr (where Debian's pure-Python packages are), else PREFIX/lib/python3.X/dist-packages
# (on sys.path for /usr/local; another prefix needs PYTHONPATH). The files are copied:
# no pip, no network, no byte-compiling, nothing of the system's Python changed.
# PYTHONDIR= installs no Python package; `make install-python` installs it alone.
PYTHON         ?= /usr/bin/python3
PYTHON_VERSION  = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHONDIR      ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(if \
                  $(PYTHON_VERSION),$(PREFIX)/lib/python$(PYTHON_VERSION)/dist-packages))
PY_PKG_FILES   := $(addprefix examples/python/carboncopy/,__init__.py carboncopy_cdef.h py.typed)
PY_PKG_DIR      = $(DESTDIR)$(PYTHONDIR)/carboncopy

.PHONY: install-python uninstall-python
install: install-python
uninstall: uninstall-python
# (PYTHONDIR is looked at in the recipes only, so other targets never run $(PYTHON).)
install-python:
	$(if $(strip $(PYTHONDIR)),install -d $(PY_PKG_DIR),@echo "install-python: PYTHONDIR is empty \
	  ($(PYTHON) not found, or PYTHONDIR= given): no Python package installed")
	$(if $(strip $(PYTHONDIR)),install -m 0644 $(PY_PKG_FILES) $(PY_PKG_DIR)/)

uninstall-python:
	$(if $(strip $(PYTHONDIR)),rm -f $(addprefix $(PY_PKG_DIR)/,$(notdir $(PY_PKG_FILES))))
	$(if $(strip $(PYTHONDIR)),rm -rf $(PY_PKG_DIR)/__pycache__)
	$(if $(strip $(PYTHONDIR)),rmdir $(PY_PKG_DIR) 2>/dev/null || true)

install: lib examples
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 0644 include/carboncopy.h $(DESTDIR)$(INCLUDEDIR)/carboncopy.h
	install -m 0755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcarboncopy.so
	install -m 0644 $(STLIB_PUB) $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|g' pkgconfig/carboncopy.pc.in \
	    > $(DESTDIR)$(PKGCONFIGDIR)/carboncopy.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/carboncopy.pc
	install -d $(DESTDIR)$(CMAKEDIR)
	$(CM_SED) pkgconfig/carboncopyConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/carboncopyConfig.cmake
	$(CM_SED) pkgconfig/carboncopyConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/carboncopyConfigVersion.cmake
	chmod 0644 $(DESTDIR)$(CMAKEDIR)/carboncopyConfig.cmake $(DESTDIR)$(CMAKEDIR)/carboncopyConfigVersion.cmake
	@# The tools are linked again, straight into BINDIR, with the run path of this install.
	for t in $(TOOLS); do \
	  $(CC) $(SANFLAGS) $(LDFLAGS) -o $(DESTDIR)$(BINDIR)/$$t $(B)/obj/examples/$$t.o $(EX_COMMON) \
	    -L$(B) -lcarboncopy $(if $(TOOLS_RPATH),-Wl$(comma)-rpath$(comma)$(TOOLS_RPATH)) -lcrypto -lpthread || exit 1; \
	  chmod 0755 $(DESTDIR)$(BINDIR)/$$t; \
	done
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(DOCDIR)/examples
	for p in $(MAN1) $(MAN3); do \
	  d=$(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}; $(MAN_SED) $$p > $$d && chmod 0644 $$d || exit 1; \
	done
	doc/man/links.sh | while read -r alias page; do \
	  ln -sf $$page $(DESTDIR)$(MANDIR)/man$${alias##*.}/$$alias || exit 1; \
	done
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(DOC_EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/carboncopy.h $(DESTDIR)$(LIBDIR)/$(notdir $(SHLIB)) \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcarboncopy.so \
	      $(DESTDIR)$(LIBDIR)/libcarboncopy.a $(DESTDIR)$(PKGCONFIGDIR)/carboncopy.pc \
	      $(DESTDIR)$(CMAKEDIR)/carboncopyConfig.cmake $(DESTDIR)$(CMAKEDIR)/carboncopyConfigVersion.cmake \
	      $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS)) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
	      $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS))) \
	      $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(DOC_EXAMPLES)))
	doc/man/links.sh | while read -r alias page; do rm -f $(DESTDIR)$(MANDIR)/man$${alias##*.}/$$alias; done
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true

# `make dist`: build/carboncopy-VERSION.tar.gz, the files git tracks (as they
# are in the working tree) under carboncopy-VERSION/, owned by root, dated by
# the last commit. test/test-dist.sh builds the library from it.
DIST := build/carboncopy-$(VERSION).tar.gz
dist:
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "make dist: needs the git checkout (it packs what git tracks)" >&2; exit 1; }
	@mkdir -p build
	git ls-files > build/dist-tracked.txt
	git ls-files --deleted > build/dist-deleted.txt
	grep -vxF -f build/dist-deleted.txt build/dist-tracked.txt > build/dist-files.txt || true
	tar --create --gzip --file $(DIST) --verbatim-files-from --files-from build/dist-files.txt \
	    --transform 'flags=r;s|^|carboncopy-$(VERSION)/|' --sort=name --owner=0 --group=0 --numeric-owner \
	    --mtime=@$$(git log -1 --format=%ct)
	rm -f build/dist-tracked.txt build/dist-deleted.txt build/dist-files.txt
	@echo "make dist: $(DIST) ($$(tar -tzf $(DIST) | wc -l) files)"

# Compares the built library with the committed baseline. Added functions and
# fields appended to struct_size structs pass; anything else abidiff reports
# fails, and so does a changed or removed enumerator or constant.
abi-check: lib
	@abidiff --no-added-syms --suppressions abi/suppressions.abignore --headers-dir2 include \
	   abi/libcarboncopy.abi $(SHLIB) > $(B)/abi-diff.txt; \
	 rc=$$?; cat $(B)/abi-diff.txt; \
	 if [ $$rc -ne 0 ]; then echo "abi-check: incompatible ABI change (abidiff exit $$rc)"; exit 1; fi
	@lib/gen-constants.sh > $(B)/constants.txt; \
	 gone=$$(LC_ALL=C comm -23 abi/constants.txt $(B)/constants.txt); \
	 if [ -n "$$gone" ]; then echo "abi-check: constants changed or removed:"; echo "$$gone"; exit 1; fi
	@echo "abi-check: compatible with abi/libcarboncopy.abi and abi/constants.txt"

# Re-records the baseline; only at a release, after review.
abi-baseline: lib
	abidw --headers-dir include --out-file abi/libcarboncopy.abi $(SHLIB)
	lib/gen-constants.sh > abi/constants.txt

format:
	clang-format -i include/*.h $(shell find lib examples test bench -name '*.[ch]')

clean:
	rm -rf build

help:
	@echo "make            build the libraries and build/bin/cc-console, cc-client"
	@echo "make demo       run a console and a client on loopback through the whole process"
	@echo "make check      build and run all tests (SANITIZE=1 for ASan/UBSan)"
	@echo "make check T=test-session   run one test file (a C test or test/NAME.sh)"
	@echo "make valgrind   run the C tests under valgrind"
	@echo "make bench      print benchmark figures"
	@echo "make install    install (DESTDIR, PREFIX, LIBDIR, INCLUDEDIR, BINDIR, MANDIR, DOCDIR,"
	@echo "                PKGCONFIGDIR, CMAKEDIR honoured; make uninstall with the same)"
	@echo "make abi-check  compare the ABI with abi/libcarboncopy.abi"
	@echo "make dist       build/carboncopy-$(VERSION).tar.gz (the tracked files)"

# Keep the objects that only pattern rules name (examples/common.o, the test
# mains) between links. Not a bare .SECONDARY:, which would make every target
# secondary, phony ones included.
.SECONDARY: $(ALL_OBJS)

-include $(ALL_OBJS:.o=.d)
-include $(FUZZ_OBJS:.o=.d) $(FUZZ_SRCS:%.c=$(FUZZ_B)/obj/%.d)

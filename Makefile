# ot-redundancy. `make` builds deb/ot-redundancy_<version>_<arch>.deb, as the
# manual says (4.3); `make help` lists the other targets.

.DEFAULT_GOAL := deb
.DELETE_ON_ERROR:

GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
MODULE := github.com/ot-redundancy/ot-redundancy

# The version is debian/changelog's, so the package and --version agree.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
ARCH := $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
# The man pages' date is the changelog's, so a rebuild gives the same pages.
DATE := $(shell date -u -d "$$(sed -n 's/^ -- .*>  //p' debian/changelog | head -n 1)" +%Y-%m-%d)

# The one binary the package installs; every ot-* command is a link to it,
# and `bin/ot-redundancy --list` names them (internal/prog/programs), so a
# new program needs no change here.
BIN := bin/ot-redundancy
LIBEXEC := /usr/libexec/ot-redundancy
# Debian 12 keeps systemd's units in /lib (the /usr move came after it).
UNITDIR ?= /lib/systemd/system

DEB_DIR := deb
DEB := $(DEB_DIR)/ot-redundancy_$(VERSION)_$(ARCH).deb
DESTDIR ?=

TEST_FLAGS ?= -count=1 -timeout 25m
BENCH_FLAGS ?= -run '^$$' -bench . -benchtime 1x
BUILD_FLAGS := -trimpath -buildvcs=false
LDFLAGS := -s -w -X $(MODULE)/internal/core/cli.Version=$(VERSION)
export CGO_ENABLED := 0

# As root, `make test` runs the integration tests, and one that skips (a
# missing tool, say) is a failure rather than a quiet gap.
ifeq ($(shell id -u),0)
export OT_REQUIRE_INTEGRATION ?= 1
endif

# What building and testing need on Debian 12, besides Go (see README):
# the real tools the integration tests drive (sshd and rsync for the
# simulated production, PostgreSQL, apt and dpkg tooling, pip in venvs,
# nginx for the configuration rollback, systemd-analyze for the units) and
# Debian's packaging tools.
DEPS := rsync openssh-server openssh-client iputils-ping iproute2 procps util-linux \
	postgresql postgresql-contrib python3 python3-venv python3-pip nginx-light \
	dpkg-dev debhelper fakeroot lintian man-db groff-base logrotate \
	systemd ca-certificates git make

.PHONY: help deps build docs install deb lint test vet bench demo clean

help: ## list the targets
	@sed -n 's/^\([a-z]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 12

# rsync is installed at its newest even where one is present: the suite
# refuses an rsync older than 3.4.0 (its receiver CVEs).
deps: ## install the Debian packages that building and testing need (as root)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade $(DEPS) >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null

build: ## build the multi-call binary and its ot-* links into bin/ (static, stripped, versioned)
	@mkdir -p bin
	$(GO) build $(BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ot-redundancy
	find bin -maxdepth 1 -type l -delete
	for name in $$($(BIN) --list); do ln -sfn ot-redundancy bin/$$name; done

docs: build ## generate man pages, bash completion and the default config file into build/
	@mkdir -p build
	$(GO) build $(BUILD_FLAGS) -o build/gendoc ./internal/tools/gendoc
	rm -rf build/man build/completion
	build/gendoc man -o build/man -bin $(BIN) -version '$(VERSION)' -date '$(DATE)'
	build/gendoc completion -o build/completion -bin $(BIN)
	build/gendoc conf >build/ot-redundancy-sync.conf

# An existing configuration file is never overwritten: `make install` on a
# configured machine keeps it (the package marks it a conffile instead).
install: build docs ## install the package's files under $(DESTDIR)
	install -d $(DESTDIR)/usr/bin $(DESTDIR)$(LIBEXEC) $(DESTDIR)/usr/share/man \
		$(DESTDIR)/usr/share/bash-completion/completions $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)/etc/odoo $(DESTDIR)/etc/cron.d $(DESTDIR)/etc/logrotate.d
	install -m 0755 $(BIN) $(DESTDIR)$(LIBEXEC)/
	for name in $$($(BIN) --list); do \
		ln -sfn ../libexec/ot-redundancy/ot-redundancy $(DESTDIR)/usr/bin/$$name; done
	cp -R build/man/. $(DESTDIR)/usr/share/man/
	cp -R build/completion/. $(DESTDIR)/usr/share/bash-completion/completions/
	install -m 0644 contrib/systemd/*.service contrib/systemd/*.timer $(DESTDIR)$(UNITDIR)/
	test -e $(DESTDIR)/etc/odoo/ot-redundancy-sync.conf || \
		install -m 0644 build/ot-redundancy-sync.conf $(DESTDIR)/etc/odoo/
	install -m 0644 contrib/cron.d/ot-redundancy $(DESTDIR)/etc/cron.d/ot-redundancy
	install -m 0644 contrib/logrotate.d/ot-redundancy $(DESTDIR)/etc/logrotate.d/ot-redundancy

deb: ## build deb/ot-redundancy_<version>_<arch>.deb (the default target)
	@mkdir -p $(DEB_DIR)
	DEB_RULES_REQUIRES_ROOT=no DEB_DIR=$(abspath $(DEB_DIR)) debian/rules binary
	@echo built $(DEB)

lint: deb ## run lintian on the package: errors and unexplained warnings fail
	lintian --fail-on error,warning --info $(DEB)

vet: ## go vet
	$(GO) vet ./...

test: ## vet, then every test; as root also the integration tests and the package's install and purge
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

bench: ## benchmarks, each against the bare tool, BENCH_FLAGS=...
	$(GO) test $(BENCH_FLAGS) ./...

demo: ## run the demonstration (as root)
	@test "$$(id -u)" = 0 || { echo 'make demo: run as root'; exit 1; }
	./contrib/demo/demo.sh

clean: ## remove everything built
	rm -rf bin build $(DEB_DIR) debian/ot-redundancy debian/.debhelper \
		debian/files debian/*.substvars debian/*.debhelper debian/*.debhelper.log \
		debian/debhelper-build-stamp

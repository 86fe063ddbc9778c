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

# Every program present: the Makefile works while programs are still landing.
CMDS := $(sort $(patsubst cmd/%/main.go,%,$(wildcard cmd/*/main.go)))
# Extra names, as NAME:PROGRAM; the manual spells the hourly job both ways.
LINKS := ot-attachment-sync:ot-attachments-sync

DEB_DIR := deb
DEB := $(DEB_DIR)/ot-redundancy_$(VERSION)_$(ARCH).deb
DESTDIR ?=

TEST_FLAGS ?= -count=1 -timeout 25m
BENCH_FLAGS ?= -run '^$$' -bench . -benchtime 1x
BUILD_FLAGS := -trimpath -buildvcs=false
LDFLAGS := -s -w -X $(MODULE)/internal/core/cli.Version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: help build docs install deb lint test vet bench demo clean

help: ## list the targets
	@sed -n 's/^\([a-z]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 12

build: ## build every cmd/* program into bin/ (static, stripped, versioned)
	@mkdir -p bin
	$(if $(CMDS),$(GO) build $(BUILD_FLAGS) -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(CMDS)))

docs: build ## generate man pages, bash completion and the default config file into build/
	@mkdir -p build
	$(GO) build $(BUILD_FLAGS) -o build/gendoc ./internal/tools/gendoc
	rm -rf build/man build/completion
	build/gendoc man -o build/man -version '$(VERSION)' -date '$(DATE)' $(addprefix bin/,$(CMDS))
	build/gendoc completion -o build/completion $(addprefix -link ,$(LINKS)) $(addprefix bin/,$(CMDS))
	build/gendoc conf >build/ot-redundancy-sync.conf

# An existing configuration file is never overwritten: `make install` on a
# configured machine keeps it (the package marks it a conffile instead).
install: build docs ## install the package's files under $(DESTDIR)
	install -d $(DESTDIR)/usr/bin $(DESTDIR)/usr/share/man/man1 \
		$(DESTDIR)/usr/share/bash-completion/completions \
		$(DESTDIR)/etc/odoo $(DESTDIR)/etc/cron.d $(DESTDIR)/etc/logrotate.d
	$(if $(CMDS),install -m 0755 $(addprefix bin/,$(CMDS)) $(DESTDIR)/usr/bin/)
	install -m 0644 build/man/* $(DESTDIR)/usr/share/man/man1/
	install -m 0644 build/completion/* $(DESTDIR)/usr/share/bash-completion/completions/
	for l in $(LINKS); do name=$${l%%:*} prog=$${l#*:}; \
		test -e bin/$$prog || continue; \
		ln -sfn $$prog $(DESTDIR)/usr/bin/$$name; \
		ln -sfn $$prog.1 $(DESTDIR)/usr/share/man/man1/$$name.1; \
		ln -sfn $$prog $(DESTDIR)/usr/share/bash-completion/completions/$$name; \
	done
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

test: ## vet, then every test (integration tests need root), TEST_FLAGS=...
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

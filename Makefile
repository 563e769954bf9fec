# Two commands for a fresh Debian/Ubuntu machine with the Swift toolchain:
#   make train   installs the system libraries if missing, builds in release mode, trains the
#                default model on the embedded corpus and prints a sample
#   make test    runs the whole test suite (swift test)
.PHONY: deps train test

deps:
	./scripts/install-deps.sh

train: deps
	swift run -c release picotron train

test: deps
	swift test

# The Debian packages (debian/): ispd, libisp1, libisp-dev, isp-sip.
# `make check-package` builds them in a temporary copy of the tree,
# runs lintian, installs them on this machine, uses what they installed
# and purges them again (scripts/check-package.sh; needs root, like
# `make check`). `make deb` builds them the same way, leaving the .debs
# in build/deb-packages. Neither touches build/: debian/rules builds into
# build/deb of its copy.

.PHONY: check-package deb

check-package:
	@scripts/deps.sh package
	@scripts/check-package.sh

# TLS and authentication (docs/SECURITY.md): ispd, libisp and everything
# linking them use OpenSSL's libssl and libcrypto (libssl-dev, installed
# by scripts/deps.sh). Included by the top Makefile; appending to its
# link flags reaches every program, test and shared library it links,
# and the fuzz targets, which compile the daemon's and the library's
# sources (tls.c among them) in one clang command.

TLS_LIBS	 = -lssl -lcrypto
ALL_LDFLAGS	+= $(TLS_LIBS)
FUZZ_CFLAGS	+= $(TLS_LIBS)

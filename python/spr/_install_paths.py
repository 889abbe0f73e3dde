"""Install locations, filled in by `make install` (python/_build/spr_build.py
install --libdir ... --bindir ... --libexecdir ...). None in a wheel pip
built: the package then finds libspr from its own install prefix."""
LIBDIR = None
BINDIR = None
LIBEXECDIR = None

"""The stories `amr demo` tells: one virtual unit and its phone (story), and
the toolkit's real tools against three virtual units (fleet). They sit beside
the product, built from its public pieces and the twin; nothing in the
product imports them."""

"""The stories `amr demo` tells: one virtual unit and its phone (story), and
the store's day with the toolkit's verbs on three new virtual units (store). They sit beside
the product, built from its public pieces and the twin; nothing in the
product imports them."""

"""Recipes: the commands' workflows, each written out as numbered steps on top of the engine and the libraries
below it. A recipe imports no other recipe except ``sweep``, which runs ``train_population`` and ``crossplay``."""

"""Running it: the composition root, settings, the kopf adapter, controller, leader election, metrics."""

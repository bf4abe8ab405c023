"""Contract suites: one class of behaviour tests per port, subclassed once per adapter."""

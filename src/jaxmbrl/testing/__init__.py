"""jaxmbrl.testing"""

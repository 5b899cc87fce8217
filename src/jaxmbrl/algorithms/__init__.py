"""jaxmbrl.algorithms"""

"""jaxmbrl.run"""

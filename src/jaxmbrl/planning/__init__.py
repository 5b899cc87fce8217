"""jaxmbrl.planning"""

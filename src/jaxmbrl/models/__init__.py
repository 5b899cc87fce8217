"""jaxmbrl.models"""

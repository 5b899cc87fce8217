"""jaxmbrl.agents"""

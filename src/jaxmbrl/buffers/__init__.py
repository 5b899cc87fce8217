"""jaxmbrl.buffers"""

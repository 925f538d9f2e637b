from frossl_plugin.losses.frossl import FroSSLLoss, frossl_loss_func

__all__ = ["FroSSLLoss", "frossl_loss_func"]

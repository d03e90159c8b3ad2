"""Kept so that `imgclf.data.builtin` imports keep working; the data sets live in `imgclf.data.sources`."""

from .sources import (BUILTIN, FASHION_CLASSES, FASHION_DIRS, export_cifar10, export_digits, export_fashion_mnist,
                      export_fer2013, fetch, find_fashion_mnist, load_fashion_mnist, read_idx)

__all__ = ["BUILTIN", "FASHION_CLASSES", "FASHION_DIRS", "export_cifar10", "export_digits", "export_fashion_mnist",
           "export_fer2013", "fetch", "find_fashion_mnist", "load_fashion_mnist", "read_idx"]

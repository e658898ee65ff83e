"""The embedded default data set: scikit-learn's 1,797 real 8x8 handwritten digits."""
from __future__ import annotations

import numpy as np
import pandas as pd


def load_digits_source() -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Return ``(images uint8 (N,1,8,8), table with sample_id/label, class names)``.

    Pixel values 0..16 are scaled to 0..255.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    table = pd.DataFrame(
        {
            "sample_id": [f"digit-{i:04d}" for i in range(len(images))],
            "label": bunch.target.astype(np.int64),
        }
    )
    return images, table, [str(c) for c in range(10)]

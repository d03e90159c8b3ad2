"""The Keras peer, run for real in its own venv (benchmarks/work/venv-keras, requirements in peers/).

Usage: venv-keras/bin/python peers/keras_peer.py CASE DATA_DIR  -> prints one JSON line {"case", "images_per_s"}.
Cases mirror the reference pipelines of REFERENCES.md; each loader resizes the PNGs it is given (the benchmarks
pass 28x28 grey Fashion-MNIST, the same files imgclf reads):
  idg_directory   ImageDataGenerator with S3's augmentation, flow_from_directory at 48x48 grey, batch 64
  idg_memory      the same generator on an in-memory uint8 array (.flow)
  model_s         S5: image_dataset_from_directory (at 32x32 RGB) + preprocessing layers + model_s, fit
  model_s_memory  S5's model_s fit on in-memory arrays (no input pipeline)
  fer_cnn         S3: ImageDataGenerator flow_from_directory feeding fer_cnn, fit
  model_s_fit     S5's whole reference recipe on DATA_DIR/{train,val,test} (STEPS = max epochs), one JSON line
                  per epoch appended to LOG (wall and CPU seconds, val accuracy), then the test accuracy;
                  `--resume` after LOG goes on from the last logged epoch (see model_s_fit)
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def s3_generator(**kw):
    try:
        from keras.preprocessing.image import ImageDataGenerator
    except ImportError:  # Keras >= 3.12 keeps it only under legacy (what tf.keras.preprocessing still exports)
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

    return ImageDataGenerator(rescale=1 / 255, rotation_range=30, width_shift_range=0.1, height_shift_range=0.1,
                              shear_range=0.1, zoom_range=0.1, horizontal_flip=True, **kw)


def timed_batches(iterator, batches: int, batch: int = 64) -> float:
    next(iterator)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def model_s(num_classes: int):
    import keras
    from keras import layers, regularizers

    inputs = keras.Input((32, 32, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.05)(x)
    x = layers.RandomZoom(0.05)(x)
    x = layers.RandomContrast(0.05)(x)
    x = layers.RandomBrightness(0.05)(x)
    x = layers.Rescaling(1 / 255)(x)
    for filters in (32, 64, 128):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              kernel_regularizer=regularizers.l2(1e-5))(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(256, activation="relu", kernel_regularizer=regularizers.l2(1e-4))(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizers.l2(1e-4))(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fer_cnn(num_classes: int):
    import keras
    from keras import layers, regularizers

    def conv(f, l2=None):
        return layers.Conv2D(f, 3, padding="same", activation="relu",
                             kernel_regularizer=regularizers.l2(l2) if l2 else None)

    model = keras.Sequential([keras.Input((48, 48, 1)),
        conv(32), conv(64), layers.BatchNormalization(), layers.MaxPooling2D(), layers.Dropout(0.25),
        conv(128), conv(256, 0.01), layers.BatchNormalization(), layers.MaxPooling2D(), layers.Dropout(0.25),
        conv(512), conv(1024, 0.01), layers.BatchNormalization(), layers.MaxPooling2D(), layers.Dropout(0.25),
        layers.Flatten(), layers.Dense(1024, activation="relu"), layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class _Speed:
    """A Keras callback measuring training images/s over the batches after the first epoch's warm-up."""

    def __new__(cls, batch: int, skip: int = 3):
        import keras

        class Speed(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.n = 0
                self.t0 = None
                self.rate = 0.0

            def on_train_batch_end(self, b, logs=None):
                self.n += 1
                if self.n == skip:
                    self.t0 = time.perf_counter()
                elif self.n > skip:
                    self.rate = (self.n - skip) * batch / (time.perf_counter() - self.t0)

        return Speed()


def _epoch_log(path: str, elapsed_before: float = 0.0):
    """A Keras callback appending one JSON line per epoch (a run cut short still leaves its curve).
    A resumed run counts its elapsed time on from `elapsed_before`."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.fit_start = time.perf_counter() - elapsed_before

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            row = {"epoch": epoch + 1, "seconds": now - self.start, "elapsed": now - self.fit_start,
                   "cpu_seconds": time.process_time() - self.cpu,
                   "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                   **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())

    return EpochLog()


def _s5_callbacks():
    import keras

    return (keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=3),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True))


def _replayed_callback_state(rows: list[dict]) -> dict:
    """The state S5's ReduceLROnPlateau and EarlyStopping were in after the logged epochs, found by feeding the
    logged val_loss values through Keras' own callback code (on a stand-in model holding only a learning rate)."""
    class Optimizer:
        learning_rate = 1e-3

    class StandIn:
        optimizer = Optimizer()
        stop_training = False

    model = StandIn()
    plateau, stopping = _s5_callbacks()
    stopping.restore_best_weights = False  # no weights here: the best epoch's come from its checkpoint
    for callback in (plateau, stopping):
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, row in enumerate(rows):
            callback.on_epoch_end(epoch, {"val_loss": row["val_loss"]})
    if not np.isclose(model.optimizer.learning_rate, rows[-1]["lr"]) or model.stop_training:
        raise SystemExit("the replayed callbacks disagree with the log (learning rate) or had stopped: not resuming")
    return {"plateau": {"best": float(plateau.best), "wait": plateau.wait,
                        "cooldown_counter": plateau.cooldown_counter},
            "stopping": {"best": float(stopping.best), "wait": stopping.wait, "best_epoch": stopping.best_epoch}}


def _resumed(callback, state: dict, on_begin=None):
    """`callback` whose on_train_begin restores `state` after Keras resets it."""
    reset = callback.on_train_begin

    def on_train_begin(logs=None):
        reset(logs)
        for name, value in state.items():
            setattr(callback, name, value)
        if on_begin:
            on_begin(callback)

    callback.on_train_begin = on_train_begin
    return callback


def model_s_fit(data: str, max_epochs: int, log: str, resume: bool = False) -> dict[str, float]:
    """S5 as REFERENCES.md gives it: Adam 1e-3, ReduceLROnPlateau(0.1, 3), EarlyStopping(6, restore best),
    ModelCheckpoint of the best val_loss, batch 64; train shuffled, validation and test unshuffled.

    The run takes hours on two cores, so it can go on in a later process (`resume`): the model and Adam's state
    come from the checkpoint of the last logged epoch (`model_s_last.keras`, or the best-val_loss checkpoint
    when that epoch was the best), the callbacks' counters from replaying the log, and the optimizer's step count
    must equal the logged epochs x batches per epoch. Only the shuffling order differs from an unbroken run."""
    import keras
    import tensorflow as tf

    def load(split: str, shuffle: bool):
        return keras.utils.image_dataset_from_directory(os.path.join(data, split), image_size=(32, 32), batch_size=64,
                                                        label_mode="int", shuffle=shuffle, seed=0)

    train, val, test = load("train", True), load("val", False), load("test", False)
    folder = os.path.dirname(os.path.abspath(log))
    best_path, last_path = os.path.join(folder, "model_s_best.keras"), os.path.join(folder, "model_s_last.keras")
    plateau, stopping = _s5_callbacks()
    best_checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor="val_loss", save_best_only=True)
    done, elapsed_before = 0, 0.0
    if resume:
        with open(log) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if not rows:
            raise SystemExit(f"cannot resume: {log} logs no finished epoch (start the run again without --resume)")
        done, elapsed_before = len(rows), rows[-1]["elapsed"]
        state = _replayed_callback_state(rows)
        best_is_last = state["stopping"]["best_epoch"] == done - 1
        source = last_path if os.path.exists(last_path) else best_path if best_is_last else None
        if source is None:
            raise SystemExit(f"cannot resume: no {last_path} and the last logged epoch ({done}) was not the best")
        model = keras.models.load_model(source)
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if steps != done * len(train):
            raise SystemExit(f"cannot resume: {source} is at step {steps}, the log's {done} epochs end at "
                             f"{done * len(train)}")
        best_weights = (model if best_is_last else keras.models.load_model(best_path)).get_weights()
        plateau = _resumed(plateau, state["plateau"])
        stopping = _resumed(stopping, state["stopping"], lambda c: setattr(c, "best_weights", best_weights))
        best_checkpoint.best = state["stopping"]["best"]  # ModelCheckpoint keeps its best across on_train_begin
    else:
        model = model_s(len(train.class_names))
    callbacks = [plateau, stopping, best_checkpoint, keras.callbacks.ModelCheckpoint(last_path),
                 _epoch_log(log, elapsed_before)]
    start = time.perf_counter()
    history = model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=val.prefetch(tf.data.AUTOTUNE),
                        epochs=max_epochs, initial_epoch=done, verbose=0, callbacks=callbacks)
    fit_seconds = time.perf_counter() - start
    val_loss, val_acc = model.evaluate(val, verbose=0)
    test_loss, test_acc = model.evaluate(test, verbose=0)
    return {"fit_seconds": fit_seconds + elapsed_before, "epochs": done + len(history.history["loss"]),
            "resumed_after_epoch": done or None, "val_accuracy": float(val_acc), "val_loss": float(val_loss),
            "test_accuracy": float(test_acc)}


def main(case: str, data: str, steps: int) -> None:
    import keras

    if case == "idg_directory":
        it = s3_generator().flow_from_directory(os.path.join(data, "train"), target_size=(48, 48),
                                                color_mode="grayscale", batch_size=64, class_mode="categorical")
        rate = timed_batches(it, steps)
    elif case == "idg_memory":
        x = np.random.default_rng(0).integers(0, 255, (20_000, 48, 48, 1), dtype=np.uint8)
        it = s3_generator().flow(x, np.zeros(len(x)), batch_size=64)
        rate = timed_batches(it, steps)
    elif case in ("model_s", "model_s_memory"):
        ds = keras.utils.image_dataset_from_directory(os.path.join(data, "train"), image_size=(32, 32),
                                                      batch_size=64, label_mode="int", shuffle=True, seed=0)
        n_classes = len(ds.class_names)
        model = model_s(n_classes)
        speed = _Speed(64)
        if case == "model_s":
            import tensorflow as tf

            model.fit(ds.prefetch(tf.data.AUTOTUNE), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[speed])
        else:
            xs, ys = [], []
            for xb, yb in ds.take(steps):
                xs.append(xb.numpy())
                ys.append(yb.numpy())
            model.fit(np.concatenate(xs), np.concatenate(ys), batch_size=64, epochs=1, verbose=0, callbacks=[speed])
        rate = speed.rate
    elif case == "model_s_fit":
        result = model_s_fit(data, steps, sys.argv[4], resume="--resume" in sys.argv[5:])
        print(json.dumps({"case": case, **result, "keras": keras.__version__}))
        return
    elif case == "fer_cnn":
        it = s3_generator().flow_from_directory(os.path.join(data, "train"), target_size=(48, 48),
                                                color_mode="grayscale", batch_size=64, class_mode="categorical")
        model = fer_cnn(it.num_classes)
        speed = _Speed(64, skip=2)
        model.fit(it, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[speed])
        rate = speed.rate
    else:
        raise SystemExit(f"unknown case {case!r}")
    print(json.dumps({"case": case, "images_per_s": rate, "keras": keras.__version__}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 50)

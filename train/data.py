"""tf.data pipelines of random crops from any folder of photos."""
import tensorflow as tf


def _load(path, crop, scales=(0.5, 0.75)):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32) / 255.0
    # Downscaling hides JPEG block artefacts, which the codec should not learn to reproduce;
    # the scale is drawn per file, and kept as large as the crop allows.
    is_jpeg = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.jpe?g")
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    smallest = tf.cast(crop, tf.float32) / tf.reduce_min(shape)
    scale = tf.maximum(tf.random.uniform((), *scales), smallest)
    image = tf.cond(
        is_jpeg & (scale < 1.0),
        lambda: tf.image.resize(image, tf.cast(shape * scale, tf.int32), "area", antialias=True),
        lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)


def _big_enough(image, crop):
    shape = tf.shape(image)
    return (shape[0] >= crop) & (shape[1] >= crop)


def training_dataset(files, crop=128, batch=8, seed=None):
    """Endless shuffled batches of random crops and flips; decoded images are cached in memory."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda p: _load(p, crop), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda im: _big_enough(im, crop)).cache()
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()

    def augment(image):
        image = tf.image.random_crop(image, (crop, crop, 3))
        return tf.image.random_flip_left_right(image)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def validation_dataset(files, crop=256, batch=1):
    """Central crops, the same every time, so that validation numbers compare across runs.
    Whole batches only: with several replicas, each must get at least one crop."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda p: _load(p, crop, (0.625, 0.625))).filter(lambda im: _big_enough(im, crop))
    ds = ds.map(lambda im: tf.image.resize_with_crop_or_pad(im, crop, crop))
    return ds.batch(batch, drop_remainder=True).cache()

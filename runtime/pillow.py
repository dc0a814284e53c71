""".aei files in Pillow: `import aedge.pillow`, then Image.open("photo.aei") and
image.save("photo.aei", quality=75) work as for any other format.

Opening reads only the header (size, mode, quality, model); the pixels are decoded when first
needed, as Pillow does for every format, so Image.open(...).size costs nothing.
"""
import io

import numpy as np
from PIL import Image, ImageFile

from aedge import bitstream, registry
from aedge.errors import AedgeError

FORMAT = "AEI"
_MODES = {("RGB", False): "RGB", ("RGB", True): "RGBA", ("L", False): "L", ("L", True): "LA"}


def _accept(prefix):
    return prefix[:4] == bitstream.MAGIC


class AeiImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "aedge learned image compression"

    def _open(self):
        head = self.fp.read(bitstream.HEADER_SIZE) + bytes(4)  # the CRC is checked on decode
        try:
            header, has_alpha = bitstream.parse_header(head), bitstream.alpha_size(head) > 0
        except AedgeError as e:
            raise SyntaxError(str(e)) from None
        self._mode = _MODES[header.mode, has_alpha]
        self._size = (header.width, header.height)
        self.info.update(quality=header.quality, model=header.model_id.hex())
        if header.networks:
            self.info["networks"] = header.networks
        tile = (("aei", (0, 0) + self.size, 0, None))
        self.tile = [ImageFile._Tile(*tile) if hasattr(ImageFile, "_Tile") else tile]


class _Decoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        self.fd.seek(0)
        data = self.fd.read()
        try:
            array = registry.codec_for(data).decompress(data)
        except AedgeError as e:
            raise OSError(f"cannot decode this .aei file: {e}") from None
        self.set_as_raw(np.ascontiguousarray(array).tobytes(), self.mode)
        return -1, 0


def _save(image, fp, filename):
    options = image.encoderinfo
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() or
                              "transparency" in image.info else "RGB")
    icc = options.get("icc_profile", image.info.get("icc_profile")) or b""
    try:
        codec = registry.load(model=options.get("model"))
        data = codec.compress(np.asarray(image), options.get("quality"), icc=icc,
                              max_bytes=options.get("max_bytes"))
    except AedgeError as e:
        raise OSError(str(e)) from None
    fp.write(data)


Image.register_open(FORMAT, AeiImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".aei")
Image.register_mime(FORMAT, "image/x-aedge")
Image.register_decoder("aei", _Decoder)

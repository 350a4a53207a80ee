#include "png_image.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace ultracore::testing {

namespace {

constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::uint32_t bigEndian32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::vector<unsigned char> readBytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Header {
  std::uint32_t width, height;
  int bit_depth, colour_type, interlace;
};

Header readHeader(const std::vector<unsigned char>& bytes, const std::filesystem::path& file) {
  if (bytes.size() < 33 || std::memcmp(bytes.data(), kSignature, sizeof(kSignature)) != 0) {
    throw std::runtime_error(file.string() + " is not a PNG (no PNG signature)");
  }
  if (std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) {
    throw std::runtime_error(file.string() + ": the first chunk is not IHDR");
  }
  const unsigned char* h = bytes.data() + 16;
  return {bigEndian32(h), bigEndian32(h + 4), h[8], h[9], h[12]};
}

int paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

}  // namespace

PngImage::Rgb PngImage::at(std::uint32_t x, std::uint32_t y) const {
  const std::size_t i = (std::size_t{y} * width + x) * 3;
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

std::pair<std::uint32_t, std::uint32_t> readPngSize(const std::filesystem::path& file) {
  const Header header = readHeader(readBytes(file), file);
  return {header.width, header.height};
}

PngImage readPng(const std::filesystem::path& file) {
  const auto bytes = readBytes(file);
  const Header header = readHeader(bytes, file);
  if (header.bit_depth != 8 || (header.colour_type != 2 && header.colour_type != 6) ||
      header.interlace != 0) {
    throw std::runtime_error(file.string() + ": only 8-bit RGB/RGBA, non-interlaced PNGs are read (bit depth " +
                             std::to_string(header.bit_depth) + ", colour type " +
                             std::to_string(header.colour_type) + ")");
  }
  std::vector<unsigned char> compressed;
  for (std::size_t at = 8; at + 12 <= bytes.size();) {
    const std::uint32_t length = bigEndian32(bytes.data() + at);
    if (at + 12 + length > bytes.size()) throw std::runtime_error(file.string() + ": truncated chunk");
    const char* type = reinterpret_cast<const char*>(bytes.data() + at + 4);
    if (std::memcmp(type, "IDAT", 4) == 0) {
      compressed.insert(compressed.end(), bytes.begin() + at + 8, bytes.begin() + at + 8 + length);
    }
    if (std::memcmp(type, "IEND", 4) == 0) break;
    at += 12 + length;
  }
  const std::size_t channels = header.colour_type == 6 ? 4 : 3;
  const std::size_t stride = header.width * channels;
  std::vector<unsigned char> raw((stride + 1) * header.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, compressed.data(), compressed.size()) != Z_OK ||
      raw_size != raw.size()) {
    throw std::runtime_error(file.string() + ": the image data does not inflate to " +
                             std::to_string(raw.size()) + " bytes");
  }

  // Undo the per-row filters in place (PNG spec, section 9).
  std::vector<unsigned char> pixels(stride * header.height);
  for (std::size_t y = 0; y < header.height; ++y) {
    const unsigned char filter = raw[y * (stride + 1)];
    const unsigned char* in = raw.data() + y * (stride + 1) + 1;
    unsigned char* out = pixels.data() + y * stride;
    const unsigned char* up = y > 0 ? out - stride : nullptr;
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= channels ? out[i - channels] : 0;
      const int b = up ? up[i] : 0;
      const int c = up && i >= channels ? up[i - channels] : 0;
      int value = in[i];
      switch (filter) {
        case 0: break;
        case 1: value += a; break;
        case 2: value += b; break;
        case 3: value += (a + b) / 2; break;
        case 4: value += paeth(a, b, c); break;
        default: throw std::runtime_error(file.string() + ": unknown row filter " + std::to_string(filter));
      }
      out[i] = static_cast<unsigned char>(value);
    }
  }

  PngImage image;
  image.width = header.width;
  image.height = header.height;
  image.rgb.reserve(std::size_t{header.width} * header.height * 3);
  for (std::size_t p = 0; p < std::size_t{header.width} * header.height; ++p) {
    image.rgb.insert(image.rgb.end(), pixels.begin() + p * channels, pixels.begin() + p * channels + 3);
  }
  return image;
}

}  // namespace ultracore::testing

#pragma once
/// @file
/// Just enough of PNG to check a browser screenshot: 8-bit RGB or RGBA, not interlaced (what
/// Chromium writes), decoded with zlib into RGB pixels.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ultracore::testing {

struct PngImage {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::uint8_t> rgb;  ///< width * height * 3 bytes, row by row

  struct Rgb {
    std::uint8_t r, g, b;
  };
  Rgb at(std::uint32_t x, std::uint32_t y) const;
};

/// Reads the signature and IHDR only: {width, height}. Throws std::runtime_error with the
/// reason when the file is not a PNG.
std::pair<std::uint32_t, std::uint32_t> readPngSize(const std::filesystem::path& file);

/// Decodes the whole image. Throws std::runtime_error (not a PNG, a format this reader does
/// not handle, corrupt data).
PngImage readPng(const std::filesystem::path& file);

}  // namespace ultracore::testing

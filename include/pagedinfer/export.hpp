// pagedinfer: the symbol export macro of the shared library.
#pragma once

#if defined(_WIN32) || defined(__CYGWIN__)
#define PAGEDINFER_API
#else
#define PAGEDINFER_API __attribute__((visibility("default")))
#endif

// pagedinfer: CPU kernels for LLM serving. Umbrella header.
#pragma once
#include "pagedinfer/attention.hpp"
#include "pagedinfer/cpu.hpp"
#include "pagedinfer/dtype.hpp"
#include "pagedinfer/error.hpp"
#include "pagedinfer/kv_cache.hpp"
#include "pagedinfer/linear.hpp"
#include "pagedinfer/memory.hpp"
#include "pagedinfer/norm.hpp"
#include "pagedinfer/quant.hpp"
#include "pagedinfer/rope.hpp"
#include "pagedinfer/tensor.hpp"

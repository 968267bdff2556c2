// Precompiled header: the LibTorch C++ API, built once per build folder.
#pragma once
#include <torch/torch.h>

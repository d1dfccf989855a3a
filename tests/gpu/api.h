/* api.h: the C API the GPU pytest drives through cffi: the engine's public
 * header and the CUDA runtime's. test_gpu_runtime.py runs it through the C
 * preprocessor (with stub/ standing in for the standard headers, whose
 * types cffi knows) so that the declarations are read, never restated. */
#include "chroma2/engine.h"
#include "../../kernels/cuda/cuda_int.h"

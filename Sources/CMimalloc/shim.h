// mimalloc (Debian's libmimalloc-dev). Linking it replaces malloc and free for the whole process (its shared
// library exports them and comes before libc in the executable's dependencies); nothing calls mi_* directly
// but the start-up log line that names the allocator.
#include <mimalloc.h>

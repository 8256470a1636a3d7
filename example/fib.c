#include "fib.h"

#define SWAP(a, b) do { unsigned long long t_ = (a); (a) = (b); (b) = t_; } while (0)

unsigned long long fib(unsigned n)
{
    unsigned long long a = 0, b = 1;
    while (n--) {
        a += b;
        SWAP(a, b);
    }
    return a;
}

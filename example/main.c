#include <stdio.h>
#include "greet.h"
#include "stats.h"
#include "fib.h"
#include "table.h"

int main(void)
{
    double d[16];
    for (unsigned i = 0; i < nplanets && i < 16; i++)
        d[i] = planets[i].au;
    puts(greeting("world"));
    printf("fib(50) = %llu\n", fib(50));
    printf("mean distance of %u planets: %.3f AU (stddev %.3f)\n",
           nplanets, mean(d, nplanets), stddev(d, nplanets));
    return 0;
}

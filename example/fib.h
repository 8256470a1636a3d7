#ifndef FIB_H
#define FIB_H
unsigned long long fib(unsigned n);
#endif

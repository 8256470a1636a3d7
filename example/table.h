#ifndef TABLE_H
#define TABLE_H
struct planet { const char *name; double au; };
extern const struct planet planets[];
extern const unsigned nplanets;
#endif

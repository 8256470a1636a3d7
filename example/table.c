#include "table.h"

#define PLANET(n, d) { #n, d }

const struct planet planets[] = {
    PLANET(Mercury, 0.39), PLANET(Venus, 0.72), PLANET(Earth, 1.00),
    PLANET(Mars, 1.52), PLANET(Jupiter, 5.20), PLANET(Saturn, 9.54),
};
const unsigned nplanets = sizeof planets / sizeof planets[0];

// All of Boost.URL's compiled part in one translation unit, as its src.hpp intends.
#include <boost/url/src.hpp>

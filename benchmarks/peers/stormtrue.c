/* The program benchmarks/storm.py's exec storm runs (built static when possible, so
 * that an exec costs the kernel's work and little of the dynamic loader's). */
int main(void)
{
    return 0;
}

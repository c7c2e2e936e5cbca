package dev.logwarden.shim;
import org.apache.lucene.analysis.TokenStream;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
@NamedComponent("pattern_capture")
public class PatternCapture implements TokenFilterFactory {
    public TokenStream create(TokenStream in) { return in; }
}
